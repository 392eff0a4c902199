/** .dockerignore matching (moby/patternmatcher semantics), pure. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IgnoreMatcher, cleanPath } from '../../src/spec/dockerignore.js';

test('cleanPath is filepath.Clean for relative slash paths', () => {
  assert.equal(cleanPath('./a//b/'), 'a/b');
  assert.equal(cleanPath('a/../b'), 'b');
  assert.equal(cleanPath('../x'), '../x');
  assert.equal(cleanPath('/'), '.');
});

test('patterns: * within an element, ** across, ? and classes, a directory excludes what is below it', () => {
  const m = IgnoreMatcher.parse('# comment\n\n*.log\n**/tmp\ndocs/?.md\n[ab]c.txt\n/build\n');
  assert.ok(m.ignores('x.log'));
  assert.ok(!m.ignores('sub/x.log'), '*.log matches only at the top');
  assert.ok(
    m.ignores('tmp') && m.ignores('a/b/tmp') && m.ignores('a/tmp/file'),
    '**/tmp at any depth, with its contents',
  );
  assert.ok(m.ignores('docs/a.md') && !m.ignores('docs/ab.md'));
  assert.ok(m.ignores('ac.txt') && m.ignores('bc.txt') && !m.ignores('cc.txt'));
  assert.ok(m.ignores('build') && m.ignores('build/out/bin'), 'a leading / is dropped; the dir excludes its contents');
  assert.ok(!m.ignores('src/main.ts'));
});

test('! re-includes; the last matching pattern wins', () => {
  const m = IgnoreMatcher.parse('*.md\n!README.md\nREADME*\n');
  assert.ok(m.ignores('CHANGES.md'));
  assert.ok(m.ignores('README.md'), 'README* after the exception excludes it again');
  const n = IgnoreMatcher.parse('build/\n!build/keep.txt\n');
  assert.ok(n.hasExclusions);
  assert.ok(n.ignores('build/x') && !n.ignores('build/keep.txt'));
});

test('** alone and at the end match everything below', () => {
  const m = IgnoreMatcher.parse('**\n!src/**\n');
  assert.ok(m.ignores('anything/at/all'));
  assert.ok(!m.ignores('src/a/b.ts'));
  assert.ok(IgnoreMatcher.parse('').empty);
});
