/**
 * The final word of an exec or attach session, as kubelet writes it on the error stream
 * (pkg/kubelet/cri/streaming/remotecommand/exec.go, attach.go): a metav1.Status as JSON for the v4
 * protocols, only the message of a failure for v1-v3. Fields in Go's order, empty ones omitted,
 * as encoding/json marshals metav1.Status.
 */
export interface StatusCause {
  reason?: string;
  message?: string;
}

export interface Status {
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: StatusCause[] };
  code?: number;
}

/** remotecommand's reason and cause type for an exit code (k8s.io/apimachinery/pkg/util/remotecommand). */
export const NON_ZERO_EXIT_CODE_REASON = 'NonZeroExitCode';
export const EXIT_CODE_CAUSE_TYPE = 'ExitCode';

export const successStatus = (): Status => ({ metadata: {}, status: 'Success' });

const exitErrorText = (cmd: string[], code: number): string =>
  `error executing command [${cmd.join(' ')}], exit code ${code}`;

/** containerd's wording for the exit error kubelet wraps ("error executing command [sh -c exit 3], exit code 3"). */
export function exitStatus(cmd: string[], code: number): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: ${exitErrorText(cmd, code)}`,
    reason: NON_ZERO_EXIT_CODE_REASON,
    details: { causes: [{ reason: EXIT_CODE_CAUSE_TYPE, message: String(code) }] },
  };
}

/** apierrors.NewInternalError(err). */
export function internalStatus(message: string): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ message }] },
    code: 500,
  };
}

/** The bytes of a status on the error stream: JSON (v4 and later), or a failure's message alone (v1-v3). */
export function encodeStatus(s: Status, json: boolean): Buffer {
  if (json) return Buffer.from(JSON.stringify(s));
  return s.status === 'Success' ? Buffer.alloc(0) : Buffer.from(s.message ?? '');
}
