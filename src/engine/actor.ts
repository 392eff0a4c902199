/**
 * A container event's Actor attributes, as dockerd's LogContainerEventWithAttributes makes them:
 * the container's labels, the event's own attributes, then `image` (as the client named it) and
 * `name`. dockerd 20.10, `docker run -l foo=bar --name ev busybox` then `docker top ev`:
 * {"foo":"bar","image":"busybox","name":"ev"}.
 */
import type { ContainerRecord } from './record.js';

export function actorOf(
  rec: Pick<ContainerRecord, 'config' | 'name'>,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { ...(rec.config.Labels ?? {}), ...extra, image: rec.config.Image ?? '', name: rec.name };
}
