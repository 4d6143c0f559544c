// Temporary directories and files for tests: each is a fresh directory under
// the OS temp dir, removed with its contents on the test's teardown, which tap
// runs also when the test failed (last registered first: after whatever the
// test starts later, e.g. a ugate with its admin socket in the directory).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestLike } from './ugate.js'

/** A fresh directory named `<prefix>XXXXXX` in the temp dir, removed on teardown. */
export function tempDir(t: TestLike, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Write `data` to a file in a fresh temp dir removed on teardown (a body for curl --data-binary @FILE). */
export function tempFile(t: TestLike, name: string, data: Buffer): string {
  const f = join(tempDir(t, 'ugate-body-'), name)
  writeFileSync(f, data)
  return f
}

/** A path for ugate's admin socket (`admin.sock`) in a fresh temp dir removed on teardown. */
export function tempSocket(t: TestLike, prefix: string): string {
  return join(tempDir(t, prefix), 'admin.sock')
}
