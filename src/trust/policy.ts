/**
 * The daemon's trust policy (`berthd --trust-policy FILE`): which repositories must be signed,
 * and optionally by which root keys. berthd then refuses unsigned or unverifiable images for every
 * API client — docker, compose, docker-py alike — at pull, create and start.
 *
 *   {
 *     "default": "none",                                  // or "signed": every image
 *     "repositories": {
 *       "registry.example:5000": { "require": "signed" }, // a whole registry
 *       "registry.example:5000/acme": { "require": "signed" }, // a namespace
 *       "registry.example:5000/acme/web": { "require": "signed", "rootKeys": ["3f2a..."] }
 *     }
 *   }
 *
 * The most specific scope that matches a repository name wins. `rootKeys` (key ids or their
 * prefixes) pin the repository's root at first sight; without it the first root seen is pinned
 * (trust on first use).
 */
import { readFileSync } from 'node:fs';
import { invalidArgument } from '../base/errors.js';
import { isObject } from '../base/json.js';

/** What the policy asks of one repository. */
export interface GateRule {
  require: 'none' | 'signed';
  rootKeys: string[];
}

export interface TrustPolicy {
  default: GateRule;
  scopes: Array<{ scope: string; rule: GateRule }>;
}

function parseRule(v: unknown, where: string): GateRule {
  if (v === 'none' || v === 'signed') return { require: v, rootKeys: [] };
  if (!isObject(v)) throw invalidArgument(`${where}: expected "none", "signed" or {"require": ...}`);
  const require = v['require'] ?? 'signed';
  if (require !== 'none' && require !== 'signed')
    throw invalidArgument(`${where}.require: "none" or "signed", not ${JSON.stringify(require)}`);
  const rootKeys = v['rootKeys'] ?? [];
  if (!Array.isArray(rootKeys) || !rootKeys.every((k) => typeof k === 'string' && /^[a-f0-9]{8,64}$/.test(k)))
    throw invalidArgument(`${where}.rootKeys: a list of key ids (hex)`);
  return { require, rootKeys: rootKeys as string[] };
}

export function parsePolicy(text: string, where: string): TrustPolicy {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${where}: not JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) throw invalidArgument(`${where}: expected an object`);
  const repos = v['repositories'] ?? {};
  if (!isObject(repos)) throw invalidArgument(`${where}: "repositories" is an object of scope -> rule`);
  return {
    default: parseRule(v['default'] ?? 'none', `${where}: default`),
    scopes: Object.entries(repos)
      .map(([scope, r]) => ({ scope, rule: parseRule(r, `${where}: repositories["${scope}"]`) }))
      .sort((a, b) => b.scope.length - a.scope.length),
  };
}

export function readPolicy(path: string): TrustPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw invalidArgument(`cannot read the trust policy ${path}: ${(e as Error).message}`);
  }
  return parsePolicy(text, path);
}

/** The rule for a repository name (`host:5000/a/b`, `busybox`): the longest scope that is it or contains it. */
export function ruleFor(p: TrustPolicy, name: string): GateRule {
  for (const s of p.scopes) if (name === s.scope || name.startsWith(`${s.scope}/`)) return s.rule;
  return p.default;
}
