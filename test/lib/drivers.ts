// The C test drivers: small ones built here with gcc under ASan/UBSan,
// the others by native/build.mk with the objects of ./build.sh or
// ./build.sh asan; sanitized ones run with leak checks. One set of flags,
// options and make calls for every test.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { repoRoot } from './ugate.js'

export { SANITIZER_RE } from './ugate.js'

/** gcc flags of every sanitized driver (warnings are errors, as in native/). */
export const SANITIZE_FLAGS = [
  '-g',
  '-O1',
  '-fsanitize=address,undefined',
  '-fno-sanitize-recover=undefined',
  '-Wall',
  '-Wextra',
  '-Werror',
]

/** The environment to run a driver in: leaks reported, UBSan with stacks. */
export const sanitizerEnv: NodeJS.ProcessEnv = {
  ...process.env,
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
  UBSAN_OPTIONS: 'print_stacktrace=1',
}

/** Build `bin` from `args` (sources, libraries; paths relative to the repo root); throws with gcc's errors. */
export function compileSanitized(bin: string, args: string[]): void {
  mkdirSync(dirname(bin), { recursive: true })
  const c = spawnSync('gcc', [...SANITIZE_FLAGS, '-o', bin, ...args], { cwd: repoRoot, encoding: 'utf8' })
  if (c.status !== 0) throw new Error(`gcc ${bin}: ${c.stderr}`)
}

/** The mbedTLS source tree the builds use (fetched by ./build.sh). */
export const MBEDTLS_SRC = resolve(repoRoot, 'build/mbedtls-src')

/**
 * A target of native/build.mk (a test driver, a library) built with the
 * objects and flags of ./build.sh asan (`asan`) or ./build.sh: the same make
 * call, so nothing is rebuilt when that build is current. `target` is
 * relative to the build's object directory; returns its path and make's
 * outcome.
 */
export function makeNative(target: string, asan: boolean): { path: string; status: number | null; stderr: string } {
  const obj = resolve(repoRoot, asan ? 'build/obj/asan' : 'build/obj/musl')
  const path = resolve(obj, target)
  if (!existsSync(resolve(MBEDTLS_SRC, 'include')))
    return { path, status: 1, stderr: `${MBEDTLS_SRC} is missing: run ./build.sh first` }
  const made = spawnSync(
    'make',
    [
      '-s',
      '-f',
      'native/build.mk',
      `O=${obj}`,
      ...(asan ? ['CC=gcc', 'PROFILE=asan'] : ['CC=musl-gcc']),
      `QJS=${resolve(repoRoot, 'build/qjs-src')}`,
      `MBEDTLS=${MBEDTLS_SRC}`,
      path,
    ],
    { cwd: repoRoot, encoding: 'utf8' },
  )
  return { path, status: made.status, stderr: made.stderr }
}

/** makeNative, throwing make's errors; returns the target's path. */
export function mustMakeNative(target: string, asan: boolean): string {
  const made = makeNative(target, asan)
  if (made.status !== 0) throw new Error(`make ${made.path}: ${made.stderr}`)
  return made.path
}
