/**
 * What every part of the runtime shares: the run dir's layout, the runtimes' binaries as invoked,
 * which runtime manages which container, and one way to call a runtime's CLI (under a deadline).
 * No decisions: the engine decides; this only knows where things are.
 *   <runDir>/<runtime>/            the OCI runtime's --root (its state per container)
 *   <runDir>/exits/<id>            exit code files conmon writes
 *   <runDir>/s/<id[:12]>           conmon's link to the bundle, holding the `attach` socket (short path)
 *   <runDir>/c/<id>/               conmon.pid, pid, runtime
 *   <runDir>/x/<exec id[:12]>/     one exec: process.json, pid, exit dir, log
 *   <runDir>/bin/<runtime>         the runtime's binary, bind-mounted read-only (pin.ts)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../base/clock.js';
import { errorMessage } from '../base/errors.js';
import { runCapture } from '../base/proc.js';
import type { HostInfo, RuntimeName } from './types.js';
import { RUNTIME_ENV } from './pin.js';

/** How long one call of a runtime's CLI (state, kill, pause, delete, update...) may take. */
export const CLI_DEADLINE_MS = 60_000;

export const short = (id: string): string => id.slice(0, 12);

export class RunDir {
  readonly exits: string;
  readonly sockets: string;
  readonly ctrs: string;
  readonly execs: string;
  readonly env = RUNTIME_ENV;
  /** Which runtime created each container (the one that must manage it). */
  private readonly runtimeOf = new Map<string, RuntimeName>();
  private readonly cgroupOfId = new Map<string, string>();
  /** Each runtime's binary as invoked (pinned read-only when possible). */
  readonly bins = new Map<RuntimeName, string>();

  constructor(
    readonly root: string,
    readonly info: HostInfo,
    readonly clock: Clock,
  ) {
    this.exits = join(root, 'exits');
    this.sockets = join(root, 's');
    this.ctrs = join(root, 'c');
    this.execs = join(root, 'x');
  }

  /** The runtime's --root (its state dirs). */
  stateRoot(name: RuntimeName): string {
    return join(this.root, name);
  }

  bin(name: RuntimeName): string {
    return this.bins.get(name) ?? this.info.runtimes[name]?.path ?? name;
  }

  /** The runtime that created container `id` (remembered in c/<id>/runtime across restarts). */
  rt(id: string): RuntimeName {
    const known = this.runtimeOf.get(id);
    if (known) return known;
    try {
      const name = readFileSync(join(this.ctrs, id, 'runtime'), 'utf8').trim() as RuntimeName;
      this.runtimeOf.set(id, name);
      return name;
    } catch {
      return this.info.defaultRuntime;
    }
  }

  /**
   * The cgroup path of container `id` (its spec's cgroupsPath: `/berth/<id>`, or under a
   * CgroupParent), remembered in c/<id>/cgroup across restarts.
   */
  cgroupOf(id: string): string {
    const known = this.cgroupOfId.get(id);
    if (known) return known;
    let path = `/berth/${id}`;
    try {
      path = readFileSync(join(this.ctrs, id, 'cgroup'), 'utf8').trim() || path;
    } catch {
      // made before the file existed, or gone: the default
    }
    this.cgroupOfId.set(id, path);
    return path;
  }

  rememberCgroup(id: string, path: string): void {
    this.cgroupOfId.set(id, path);
  }

  remember(id: string, name: RuntimeName): void {
    this.runtimeOf.set(id, name);
  }

  forget(id: string): void {
    this.runtimeOf.delete(id);
    this.cgroupOfId.delete(id);
  }

  /** `<runtime> --root=... args` for container `id`, SIGKILLed past the CLI deadline. */
  cli(id: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
    return this.cliOf(this.rt(id), args);
  }

  cliOf(name: RuntimeName, args: string[]): Promise<{ stdout: string; stderr: string }> {
    // spawned off the event loop (base/proc.ts runCapture): a `kill` or `delete --force` per removal
    // of a running container held every other request while the runtime's child exec'd
    return runCapture(this.bin(name), [`--root=${this.stateRoot(name)}`, ...args], {
      maxBuffer: 4 * 1024 * 1024,
      env: this.env,
      timeoutMs: CLI_DEADLINE_MS,
    });
  }
}

/** The runtime's own words from a failed CLI call (its stderr), or the error's message. */
export const cliMessage = (e: unknown): string => ((e as { stderr?: string }).stderr || errorMessage(e)).trim();
