import { systemClock, type Clock } from '../base/clock.js';
import { invalidArgument } from '../base/errors.js';

/**
 * The daemon's event stream (GET /events). Keeps the last `capacity` events in memory for
 * `--since` replays, as dockerd does, and fans out to live subscribers.
 */
export interface EngineEvent {
  Type: 'container' | 'image' | 'network' | 'volume' | 'daemon';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  /** Legacy fields docker clients still read. */
  status?: string;
  id?: string;
  from?: string;
}

type Listener = (e: EngineEvent) => void;

/**
 * A `since`/`until` of GET /events as dockerd reads it (timetypes.ParseTimestamps): Unix seconds,
 * optionally `.` and a fraction (`1700000000.5` is half a second in), signed; the docker CLI turns
 * RFC 3339 times and durations (`10m`) into that form before it sends them, and dockerd's API
 * takes nothing else (`since=10m` -> `strconv.ParseInt: parsing "10m": invalid syntax`).
 * Returns epoch nanoseconds, or null for unset (absent, empty, or exactly 0 as dockerd's zero time).
 */
export function parseEventTime(v: string | null): bigint | null {
  if (v === null || v === '') return null;
  const dot = v.indexOf('.');
  const sec = dot < 0 ? v : v.slice(0, dot);
  const frac = dot < 0 ? '' : v.slice(dot + 1);
  const bad = (part: string) => invalidArgument(`strconv.ParseInt: parsing ${JSON.stringify(part)}: invalid syntax`);
  if (!/^[+-]?\d{1,18}$/.test(sec)) throw bad(sec);
  if (dot >= 0 && !/^\d{1,9}$/.test(frac)) throw bad(frac);
  const s = BigInt(sec);
  const ns = BigInt((frac + '000000000').slice(0, 9));
  const t = s * 1_000_000_000n + ns; // as Go's time.Unix(sec, nsec): the fraction adds, whatever the sign
  return s === 0n && ns === 0n ? null : t;
}

export class EventBus {
  private readonly ring: EngineEvent[] = [];
  private readonly listeners = new Set<Listener>();
  constructor(
    private readonly clock: Clock = systemClock,
    private readonly capacity = 1024,
  ) {}

  emit(type: EngineEvent['Type'], action: string, id: string, attributes: Record<string, string> = {}): void {
    const nowNs = BigInt(this.clock.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    const e: EngineEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Number(nowNs / 1_000_000_000n),
      timeNano: Number(nowNs),
    };
    if (type === 'container' || type === 'image') {
      e.status = action;
      e.id = id;
      if (attributes['image']) e.from = attributes['image'];
    }
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const l of this.listeners) l(e);
  }

  /**
   * Events with timeNano in [sinceNs, untilNs] (no upper bound by default). Times are epoch
   * nanoseconds (~1.8e18 today): a bound of Number.MAX_SAFE_INTEGER (~9e15 ns, 1970) excludes them all.
   */
  history(sinceNs: number, untilNs = Infinity): EngineEvent[] {
    return this.ring.filter((e) => e.timeNano >= sinceNs && e.timeNano <= untilNs);
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}
