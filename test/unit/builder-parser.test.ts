/** The Dockerfile parser against Docker's rules: directives, continuations, forms, heredocs, substitution, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expand, keyValues, parseDockerfile, splitWords, stagesOf, unquote } from '../../src/builder/parser.js';
import { buildErrorDetail, ParseFailed } from '../../src/builder/types.js';

test('directives only at the top; escape=` changes continuations', () => {
  const df = parseDockerfile(
    '# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN echo a `\n  b\n# escape=\\\\\n',
  );
  assert.deepEqual(df.directives, { syntax: 'docker/dockerfile:1', escape: '`' });
  assert.equal(df.instructions[1]!.raw, 'echo a   b');
  const late = parseDockerfile('FROM busybox\n# escape=`\nRUN echo \\\n ok\n');
  assert.equal(late.escape, '\\', 'a directive after an instruction is a comment');
  assert.equal(late.instructions[1]!.raw, 'echo  ok');
  assert.throws(() => parseDockerfile('# escape=x\nFROM a\n'), /invalid escape token/);
});

test('continuations skip comment and empty lines; keywords in any case; lines are reported', () => {
  const df = parseDockerfile(
    'from busybox AS Base\n\nrun echo one \\\n# a comment\n\n    two\nCMD ["sh", "-c", "echo hi"]\nENTRYPOINT echo plain\n',
  );
  assert.deepEqual(
    df.instructions.map((i) => [i.name, i.line]),
    [
      ['FROM', 1],
      ['RUN', 3],
      ['CMD', 7],
      ['ENTRYPOINT', 8],
    ],
  );
  assert.equal(df.instructions[1]!.raw, 'echo one     two');
  assert.deepEqual([df.instructions[2]!.json, df.instructions[2]!.args], [true, ['sh', '-c', 'echo hi']]);
  assert.deepEqual([df.instructions[3]!.json, df.instructions[3]!.raw], [false, 'echo plain']);
  assert.equal(stagesOf(df).stages[0]!.name, 'base');
});

test('flags, heredocs, ONBUILD', () => {
  const df = parseDockerfile(
    [
      'FROM --platform=linux/amd64 busybox AS b',
      'COPY --from=b --chown=1:2 --chmod=755 /a /b',
      'RUN --mount=type=cache,target=/c --mount=type=secret,id=s cat /run/secrets/s',
      'RUN <<EOF',
      'echo $HOME',
      'EOF',
      'COPY <<-"END" /etc/conf',
      '\tkey=$literal',
      '\tEND',
      'ONBUILD RUN echo later',
      '',
    ].join('\n'),
  );
  const [from, copy, run, here, copyHere, onbuild] = df.instructions;
  assert.deepEqual(from!.flags, { platform: ['linux/amd64'] });
  assert.deepEqual(copy!.flags, { from: ['b'], chown: ['1:2'], chmod: ['755'] });
  assert.deepEqual(run!.flags['mount'], ['type=cache,target=/c', 'type=secret,id=s']);
  assert.deepEqual(here!.heredocs, [{ name: 'EOF', content: 'echo $HOME\n', expand: true, chomp: false }]);
  assert.deepEqual(copyHere!.heredocs, [{ name: 'END', content: 'key=$literal\n', expand: false, chomp: true }]);
  assert.equal(onbuild!.inner!.name, 'RUN');
  assert.throws(
    () => parseDockerfile('FROM a\nONBUILD FROM b\n'),
    /Dockerfile:2: FROM isn't allowed as an ONBUILD trigger/,
  );
  assert.throws(() => parseDockerfile('FROM a\nRUN <<EOF\necho\n'), /Dockerfile:2: unterminated heredoc EOF/);
});

test('variable substitution like Docker: forms, quotes, escapes, unknowns', () => {
  const vars = new Map([
    ['A', 'x'],
    ['EMPTY', ''],
    ['P', '/usr/bin'],
  ]);
  assert.equal(expand('$A ${A} ${A}y', vars), 'x x xy');
  assert.equal(expand('${NOPE:-def} ${EMPTY:-def} ${EMPTY-def} ${NOPE-def}', vars), 'def def  def');
  assert.equal(expand('${A:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${NOPE+alt}', vars), 'alt  alt ');
  assert.equal(expand('${NOPE:-${P}/sh}', vars), '/usr/bin/sh');
  assert.equal(unquote(expand('\'$A\' "$A" \\$A', vars)), '$A x $A');
  assert.equal(expand('$NOPE|', vars), '|');
  assert.throws(() => expand('${A', vars), /missing '}'/);
  assert.deepEqual(keyValues(splitWords('A=1 B="two words" C=$A\\ z'), vars, '\\', 'ENV', true), [
    ['A', '1'],
    ['B', 'two words'],
    ['C', 'x z'],
  ]);
  assert.deepEqual(keyValues(splitWords('LEGACY value with spaces'), vars, '\\', 'ENV', true), [
    ['LEGACY', 'value with spaces'],
  ]);
  assert.throws(() => keyValues(splitWords('=x'), vars, '\\', 'LABEL', false), /names can not be blank/);
});

test('errors point at the line', () => {
  assert.throws(
    () => parseDockerfile('FROM busybox\n\n\n\n\n\nRUNN echo\n'),
    /^.*Dockerfile:7: unknown instruction: RUNN/,
  );
  assert.throws(() => parseDockerfile('RUN echo\n'), /Dockerfile:1: RUN before FROM/);
  assert.throws(() => parseDockerfile('# only a comment\n'), /no FROM instruction/);
  assert.throws(() => parseDockerfile('FROM a b\n'), /Dockerfile:1: FROM requires either one or three arguments/);
  assert.throws(() => parseDockerfile('FROM a\nCOPY onlyone\n'), /Dockerfile:2: COPY requires at least two arguments/);
  assert.throws(() => parseDockerfile('FROM a\nSHELL /bin/sh\n'), /SHELL requires the arguments to be in JSON form/);
  assert.throws(
    () => stagesOf(parseDockerfile('FROM a AS x\nFROM b AS X\n', 'sub/Dockerfile.dev'), 'sub/Dockerfile.dev'),
    /sub\/Dockerfile.dev:2: duplicate name for build stage: "x"/,
  );
});

test('stages: global ARGs before the first FROM, one stage per FROM', () => {
  const { globalArgs, stages } = stagesOf(
    parseDockerfile('ARG V=1\nFROM busybox:${V} AS one\nRUN a\nFROM one\nRUN b\nRUN c\n'),
  );
  assert.equal(globalArgs.length, 1);
  assert.deepEqual(
    stages.map((s) => [s.name, s.instructions.length]),
    [
      ['one', 1],
      [null, 2],
    ],
  );
});

test('WORKDIR, USER and STOPSIGNAL take the whole rest as one argument, as dockerd (parseString)', () => {
  // dockerd 20.10: `WORKDIR /a b` then `WORKDIR c  d` -> Config.WorkingDir "/a b/c  d",
  // history "/bin/sh -c #(nop) WORKDIR /a b"; a bare WORKDIR: "dockerfile parse error line 5:
  // WORKDIR requires exactly one argument" (HTTP 400)
  const df = parseDockerfile('FROM busybox\nWORKDIR /a b\nWORKDIR c  d\nUSER  app user \nSTOPSIGNAL SIG TERM\n');
  assert.deepEqual(
    df.instructions.slice(1).map((i) => [i.name, i.args]),
    [
      ['WORKDIR', ['/a b']],
      ['WORKDIR', ['c  d']],
      ['USER', ['app user']],
      ['STOPSIGNAL', ['SIG TERM']],
    ],
  );
  assert.throws(
    () => parseDockerfile('FROM busybox\nWORKDIR\n'),
    (e: unknown) => {
      assert.ok(e instanceof ParseFailed);
      assert.equal(e.line, 2);
      assert.equal(e.reason, 'WORKDIR requires exactly one argument');
      assert.equal(
        buildErrorDetail(e, false).message,
        'dockerfile parse error line 2: WORKDIR requires exactly one argument',
      );
      assert.equal(buildErrorDetail(e, true).message, 'Dockerfile:2: WORKDIR requires exactly one argument');
      return true;
    },
  );
});
