// native/jsheap.c, QuickJS's backing allocator in the release build, run
// under ASan and UBSan by its driver (test/native/jsheap-test.c): a
// fixed-seed mix of mallocs, callocs, reallocs and frees, each live block
// filled with its own byte, so an overlap, a realloc that loses bytes, a
// block handed out twice or a dirty calloc shows as a wrong byte; the large
// blocks it passes to malloc are checked by ASan itself (leaks too).

import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import t from 'tap'
import { SANITIZER_RE, compileSanitized, sanitizerEnv } from '../lib/drivers.js'
import { repoRoot } from '../lib/ugate.js'

const bin = resolve(repoRoot, 'build/jsheap-test/jsheap-test')
compileSanitized(bin, [
  '-DUG_JSHEAP_UNDER_ASAN',
  '-Inative',
  '-Ibuild/qjs-src',
  'test/native/jsheap-test.c',
  'native/jsheap.c',
])

t.test('every block keeps its bytes through mallocs, callocs, reallocs and frees', async (t) => {
  const r = spawnSync(bin, [], { env: sanitizerEnv, encoding: 'utf8' })
  t.notMatch(r.stderr, SANITIZER_RE, 'no sanitizer report')
  t.match(r.stdout, /^ok 200000 \d+\n$/, `the driver's verdict: ${r.stdout.trim()}`)
  t.equal(r.status, 0, 'exit 0')
})
