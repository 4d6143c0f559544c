// HBONE tunnels (native/hbone.c) on the real engine thread (native/engine.c),
// compiled with ASan/UBSan with the C driver test/native/hbone-test.c: a client
// and a server tunnel of one process over loopback with a plain test-only
// transport (TLS is tested end to end in test/e2e/hbone.ts): 8 MiB each way,
// initial bytes, half-close both ways, 100 concurrent streams on one pooled
// connection, resets both ways, 503, a dead peer replaced after its PING
// timeout, a fast destination behind a slow tunnel with PINGs every 20 ms
// (the HTTP/2 output stays bounded, so PING ACKs are never refused), a bad
// preface, reverse tunnels (roles swapped by a stand-in for ALPN: a stream
// from the accepting side served by the dialing side, refused, unsupported,
// drained by GOAWAY, the dialing side's own PING timing), fds and config
// references back to the baseline.

import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import t from 'tap'
import { SANITIZER_RE, compileSanitized, sanitizerEnv } from '../lib/drivers.js'
import { repoRoot } from '../lib/ugate.js'

const outDir = resolve(repoRoot, 'build/hbone-test')
const SOURCES = ['test/native/hbone-test.c', 'native/hbone.c', 'native/h2.c', 'native/hpack.c', 'native/engine.c']

t.test('hbone: bridged streams over a plain test transport (ASan/UBSan)', async (t) => {
  const bin = resolve(outDir, 'hbone-test')
  compileSanitized(bin, [...SOURCES, '-lpthread'])
  const r = spawnSync(bin, [], { env: sanitizerEnv, encoding: 'utf8', timeout: 120_000 })
  const lines = r.stdout.split('\n').filter((l) => /^(not )?ok \d+ - /.test(l))
  t.match(r.stdout, new RegExp(`^${lines.length} checks, \\d+ failed$`, 'm'), 'the driver ran to its end')
  t.ok(lines.length >= 32, `checks reported (${lines.length})`)
  for (const l of lines) t.ok(l.startsWith('ok '), l.replace(/^(not )?ok \d+ - /, ''))
  t.equal(r.status, 0, 'exit 0')
  t.notMatch(r.stderr, SANITIZER_RE, 'no sanitizer report')
})
