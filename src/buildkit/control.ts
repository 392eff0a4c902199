/**
 * moby.buildkit.v1.Control as berth serves it on `POST /grpc` (what dockerd serves there for
 * buildx): ListWorkers, Solve (the dockerfile.v0 frontend only), Status, DiskUsage, Prune. Session,
 * Info and Solve of an LLB definition answer UNIMPLEMENTED. The engine's verb (../engine/buildkit.ts)
 * supplies the handlers; this file owns the wire types and the progress board that joins a Solve to
 * the Status calls for its Ref.
 */
import type { Duplex } from 'node:stream';
import { unavailable } from '../base/errors.js';
import { serveGrpc, type Handler } from './grpc-server.js';
import { servedMethods, type Timestamp } from './protos.js';

export interface Platform {
  Architecture: string;
  OS: string;
}

export interface WorkerRecord {
  ID: string;
  Labels: Record<string, string>;
  platforms: Platform[];
  GCPolicy: never[];
  BuildkitVersion: { package: string; version: string; revision: string };
}

export interface UsageRecord {
  ID: string;
  Mutable: boolean;
  InUse: boolean;
  Size: number;
  CreatedAt: Timestamp | null;
  LastUsedAt: Timestamp | null;
  UsageCount: number;
  Description: string;
  RecordType: string;
  Shared: boolean;
  Parents: string[];
}

/** SolveRequest as proto-loader decodes it (keepCase, defaults). */
export interface SolveRequest {
  Ref: string;
  Definition: { def: Buffer[] } | null;
  Exporter: string;
  ExporterAttrs: Record<string, string>;
  Session: string;
  Frontend: string;
  FrontendAttrs: Record<string, string>;
  Exporters: Array<{ Type: string; Attrs: Record<string, string> }>;
}

export interface PruneRequest {
  filter: string[];
  all: boolean;
  keepDuration: number;
  keepBytes: number;
}

export interface ControlHandlers {
  listWorkers(): WorkerRecord[];
  /** answers SolveResponse.ExporterResponse */
  solve(req: SolveRequest, signal: AbortSignal): Promise<Record<string, string>>;
  /** sends StatusResponse messages (encoded) until the build of `ref` ends */
  status(ref: string, send: (status: Buffer) => void, signal: AbortSignal): Promise<void>;
  diskUsage(filter: string[]): Promise<UsageRecord[]>;
  prune(req: PruneRequest, send: (r: UsageRecord) => void, signal: AbortSignal): Promise<void>;
}

const CONTROL = 'moby.buildkit.v1.Control';

/** Serves Control on `conn` (the upgraded `/grpc` connection) until it ends. */
export function serveControl(conn: Duplex, h: ControlHandlers): Promise<void> {
  const handlers: Record<string, Handler> = {
    ListWorkers: async (_req, send) => send({ record: h.listWorkers() }),
    Solve: async (req, send, signal) => send({ ExporterResponse: await h.solve(req as SolveRequest, signal) }),
    Status: (req, send, signal) => h.status((req as { Ref: string }).Ref, send, signal),
    DiskUsage: async (req, send) => send({ record: await h.diskUsage((req as { filter: string[] }).filter) }),
    Prune: (req, send, signal) => h.prune(req as PruneRequest, (r) => send(r as unknown as object), signal),
  };
  return serveGrpc(conn, { name: CONTROL, methods: servedMethods(CONTROL), handlers });
}

interface Job {
  messages: Buffer[];
  /** absolute index of messages[0] */
  first: number;
  bytes: number;
  done: boolean;
  listeners: Set<() => void>;
}

/** How much progress of one build is kept for Status calls (older messages are dropped first). */
const MAX_KEPT_BYTES = 8 * 1024 * 1024;
/** How long a finished build's progress stays readable, and how long Status waits for a Solve. */
const KEEP_MS = 60_000;

/**
 * The progress of builds by Ref: a Solve publishes its StatusResponse messages, Status calls for
 * that Ref replay them and follow until the build ends. buildx calls Status and Solve at the same
 * time, so a Status may come first: it waits for the Ref to appear.
 */
export class ProgressBoard {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting = new Map<string, Set<() => void>>();

  has(ref: string): boolean {
    const j = this.jobs.get(ref);
    return !!j && !j.done;
  }

  /** Starts the board of `ref`; the returned functions publish a message and end it. */
  open(ref: string): { publish: (m: Buffer) => void; close: () => void } {
    const job: Job = { messages: [], first: 0, bytes: 0, done: false, listeners: new Set() };
    this.jobs.set(ref, job);
    for (const w of this.waiting.get(ref) ?? []) w();
    this.waiting.delete(ref);
    const wake = () => {
      for (const l of [...job.listeners]) l();
    };
    return {
      publish: (m) => {
        job.messages.push(m);
        job.bytes += m.length;
        while (job.bytes > MAX_KEPT_BYTES && job.messages.length > 1) {
          job.bytes -= job.messages.shift()!.length;
          job.first++;
        }
        wake();
      },
      close: () => {
        job.done = true;
        wake();
        setTimeout(() => {
          if (this.jobs.get(ref) === job) this.jobs.delete(ref);
        }, KEEP_MS).unref();
      },
    };
  }

  /** Sends the progress of `ref` until its build ends (waiting up to KEEP_MS for it to start). */
  async follow(ref: string, send: (m: Buffer) => void, signal: AbortSignal): Promise<void> {
    let job = this.jobs.get(ref);
    if (!job) {
      await new Promise<void>((resolve, reject) => {
        const set = this.waiting.get(ref) ?? new Set();
        const t = setTimeout(() => stop(unavailable(`no build with ref ${ref}`)), KEEP_MS);
        const stop = (e?: Error) => {
          clearTimeout(t);
          set.delete(go);
          if (!set.size) this.waiting.delete(ref);
          signal.removeEventListener('abort', onAbort);
          if (e) reject(e);
          else resolve();
        };
        const go = () => stop();
        const onAbort = () => stop(new Error('the client cancelled the call'));
        set.add(go);
        this.waiting.set(ref, set);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      job = this.jobs.get(ref)!;
    }
    const j = job;
    let next = j.first; // absolute index of the next message to send
    await new Promise<void>((resolve) => {
      const pump = () => {
        next = Math.max(next, j.first); // what was dropped from the front is skipped
        while (next < j.first + j.messages.length) send(j.messages[next++ - j.first]!);
        if (j.done || signal.aborted) {
          j.listeners.delete(pump);
          signal.removeEventListener('abort', pump);
          resolve();
        }
      };
      j.listeners.add(pump);
      signal.addEventListener('abort', pump, { once: true });
      pump();
    });
  }
}
