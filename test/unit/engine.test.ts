// The engine thread (native/engine.c) on its own, compiled with ASan/UBSan
// with its C driver test/native/engine-test.c: jobs in post order and batched
// into one pass, handlers of watched fds, ticks while busy, signals blocked,
// stop (posted jobs run, stop hook, fds back to baseline).

import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import t from 'tap'
import { SANITIZER_RE, compileSanitized, sanitizerEnv } from '../lib/drivers.js'
import { repoRoot } from '../lib/ugate.js'

const outDir = resolve(repoRoot, 'build/engine-test')

t.test('engine: jobs, handlers, ticks, stop (ASan/UBSan)', async (t) => {
  const bin = resolve(outDir, 'engine-test')
  compileSanitized(bin, ['test/native/engine-test.c', 'native/engine.c', '-lpthread'])
  const r = spawnSync(bin, [], { env: sanitizerEnv, encoding: 'utf8' })
  const lines = r.stdout.split('\n').filter((l) => /^(not )?ok \d+ - /.test(l))
  t.equal(r.stdout.match(/^1\.\.(\d+)$/m)?.[1], String(lines.length), 'the driver ran to its end')
  t.ok(lines.length >= 15, `checks reported (${lines.length})`)
  for (const l of lines) t.ok(l.startsWith('ok '), l.replace(/^(not )?ok \d+ - /, ''))
  t.equal(r.status, 0, 'exit 0')
  t.notMatch(r.stderr, SANITIZER_RE, 'no sanitizer report')
})
