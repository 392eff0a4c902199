/**
 * Platform specifiers (`linux/arm64/v8`, `arm64`, `windows`) parsed and normalized as dockerd
 * 20.10 does it (containerd's `platforms.Parse`), with its error wording: clients match on it.
 */
import { invalidArgument, notImplemented } from '../base/errors.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const COMPONENT = /^[A-Za-z0-9_-]+$/;
const KNOWN_OS = new Set(
  'aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris windows zos'.split(
    ' ',
  ),
);
const KNOWN_ARCH = new Set(
  (
    '386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 mips64le mips64p32 ' +
    'mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm'
  ).split(' '),
);

/** The host's platform (the default of a pull). */
export function hostPlatform(): Platform {
  const arch =
    (
      { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<
        string,
        string
      >
    )[process.arch] ?? process.arch;
  return { os: 'linux', architecture: arch };
}

const normalizeOs = (os: string) => (os.toLowerCase() === 'macos' ? 'darwin' : os.toLowerCase());

function normalizeArch(archIn: string, variantIn: string): [string, string] {
  let arch = archIn.toLowerCase();
  let variant = variantIn.toLowerCase();
  switch (arch) {
    case 'i386':
      arch = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
      arch = 'amd64';
      variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      arch = 'arm64';
      if (variant === '8' || variant === 'v8') variant = '';
      break;
    case 'armhf':
      arch = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      arch = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '' || variant === '7') variant = 'v7';
      else if (variant === '5' || variant === '6' || variant === '8') variant = `v${variant}`;
      break;
  }
  return [arch, variant];
}

const make = (os: string, architecture: string, variant: string): Platform => ({
  os,
  architecture,
  ...(variant ? { variant } : {}),
});

/**
 * Parses a platform specifier as dockerd does (400 with containerd's words for a malformed one:
 * `"foo/bar/baz/qux": cannot parse platform specifier: invalid argument`).
 */
export function parsePlatform(spec: string): Platform {
  if (spec.includes('*')) throw notImplemented('wildcards not yet supported: not implemented');
  const parts = spec.split('/');
  for (const part of parts)
    if (!COMPONENT.test(part))
      throw invalidArgument(
        `${JSON.stringify(part)} is an invalid component of ${JSON.stringify(spec)}: ` +
          `platform specifier component must match "^[A-Za-z0-9_-]+$": invalid argument`,
      );
  switch (parts.length) {
    case 1: {
      const os = normalizeOs(parts[0]!);
      if (KNOWN_OS.has(os)) return make(os, hostPlatform().architecture, '');
      const [arch, v] = normalizeArch(parts[0]!, '');
      if (KNOWN_ARCH.has(arch)) return make('linux', arch, arch === 'arm' && v === 'v7' ? '' : v);
      throw invalidArgument(`${JSON.stringify(spec)}: unknown operating system or architecture: invalid argument`);
    }
    case 2: {
      const [arch, v] = normalizeArch(parts[1]!, '');
      return make(normalizeOs(parts[0]!), arch, arch === 'arm' && v === 'v7' ? '' : v);
    }
    case 3: {
      const [arch, v] = normalizeArch(parts[1]!, parts[2]!);
      return make(normalizeOs(parts[0]!), arch, arch === 'arm64' && v === '' ? 'v8' : v);
    }
  }
  throw invalidArgument(`${JSON.stringify(spec)}: cannot parse platform specifier: invalid argument`);
}

/** `os/arch[/variant]`, as dockerd names a platform in its messages. */
export const formatPlatform = (p: Platform): string => [p.os, p.architecture, p.variant].filter((x) => x).join('/');

/**
 * Whether an index entry's platform serves `want` (containerd's matcher, normalized on both
 * sides; a missing variant matches arm's default v7 and arm64's v8).
 */
export function platformMatches(
  have: { os?: string; architecture?: string; variant?: string } | undefined,
  want: Platform,
): boolean {
  if (!have?.os || !have.architecture) return false;
  const [arch, v] = normalizeArch(have.architecture, have.variant ?? '');
  const variantOf = (a: string, x: string) => x || (a === 'arm' ? 'v7' : a === 'arm64' ? 'v8' : '');
  return (
    normalizeOs(have.os) === want.os &&
    arch === want.architecture &&
    variantOf(arch, v) === variantOf(want.architecture, want.variant ?? '')
  );
}
