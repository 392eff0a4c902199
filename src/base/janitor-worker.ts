/**
 * The janitor's thread (janitor.ts): removes each tree it is sent with `rmSync`, one after the
 * other, and answers with the job's id (and the error's message and code when it failed).
 */
import { rmSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

export interface JanitorJob {
  id: number;
  path: string;
}

export interface JanitorReply {
  id: number;
  error?: string;
  code?: string;
}

parentPort?.on('message', (job: JanitorJob) => {
  try {
    rmSync(job.path, { recursive: true, force: true, maxRetries: 2 });
    parentPort!.postMessage({ id: job.id } satisfies JanitorReply);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    parentPort!.postMessage({ id: job.id, error: err.message, code: err.code ?? 'EIO' } satisfies JanitorReply);
  }
});
