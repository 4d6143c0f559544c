// Command-line handling: bad input exits 2 naming the bad value;
// --version and --help exit 0.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { runUgate, SANITIZER_RE } from '../lib/ugate.js'
import type { ExitResult } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

function noSanitizer(t: Test, r: ExitResult) {
  t.same(
    r.stderr.filter((l) => SANITIZER_RE.test(l)),
    [],
    'no sanitizer reports',
  )
}

const bad: Array<[string, string[], string]> = [
  ['unknown flag', ['run', '--bogus-flag'], '--bogus-flag'],
  ['listen port out of range', ['run', '--forward', '127.0.0.1:99999=127.0.0.1:80'], '99999'],
  ['target port out of range', ['run', '--forward', '127.0.0.1:0=127.0.0.1:70000'], '70000'],
  ['non-numeric port', ['run', '--forward', '127.0.0.1:abc=127.0.0.1:80'], 'abc'],
  ['bad idle timeout', ['run', '--forward', '127.0.0.1:0=127.0.0.1:80', '--idle-timeout', 'soon'], 'soon'],
  [
    'missing config file',
    ['run', '--config', '/nonexistent-ugate-dir/missing-config.json'],
    '/nonexistent-ugate-dir/missing-config.json',
  ],
]

for (const [name, args, value] of bad) {
  t.test(name, async (t) => {
    const r = runUgate(args)
    t.same({ code: r.code, signal: r.signal }, { code: 2, signal: null }, `exit status 2 for ${args.join(' ')}`, {
      stderr: r.stderr,
    })
    t.ok(
      r.stderr.some((l) => l.includes(value)),
      `stderr names the bad value ${value}`,
      { stderr: r.stderr },
    )
    t.equal(r.stderr.filter((l) => / info ready /.test(l)).length, 0, 'never became ready')
    noSanitizer(t, r)
  })
}

t.test('config file with invalid JSON', async (t) => {
  const dir = tempDir(t, 'ugate-cli-')
  const file = join(dir, 'broken.json')
  writeFileSync(file, '{ "listeners": [ ')
  const r = runUgate(['run', '--config', file])
  t.same({ code: r.code, signal: r.signal }, { code: 2, signal: null }, 'exit status 2', { stderr: r.stderr })
  t.ok(r.stderr.length > 0, 'an error message on stderr')
  noSanitizer(t, r)
})

t.test('--version', async (t) => {
  const r = runUgate(['--version'])
  t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, 'exit status 0', { stderr: r.stderr })
  t.match(r.stdout + r.stderr.join('\n'), /\d+\.\d+/, 'prints a version number')
  noSanitizer(t, r)
})

t.test('--help', async (t) => {
  const r = runUgate(['--help'])
  t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, 'exit status 0', { stderr: r.stderr })
  t.match(r.stdout + r.stderr.join('\n'), /--forward/, 'usage mentions --forward')
  noSanitizer(t, r)
})
