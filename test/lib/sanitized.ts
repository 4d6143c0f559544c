// The C test drivers of the unit tests: built with gcc under ASan/UBSan and
// run with leak checks, all with one set of flags and options.

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

/** The ASan build's object directory and mbedTLS source tree (./build.sh asan). */
export const ASAN_OBJ = resolve(repoRoot, 'build/obj/asan')
export const MBEDTLS_SRC = resolve(repoRoot, 'build/mbedtls-src')

/**
 * Make `target` of native/build.mk as `./build.sh asan` does, so nothing is
 * rebuilt when that build is current; throws when it fails.
 */
export function makeAsan(target: string): void {
  if (!existsSync(resolve(MBEDTLS_SRC, 'include')))
    throw new Error(`${MBEDTLS_SRC} is missing: run ./build.sh asan first`)
  const vars = [
    `O=${ASAN_OBJ}`,
    'CC=gcc',
    'PROFILE=asan',
    `QJS=${resolve(repoRoot, 'build/qjs-src')}`,
    `MBEDTLS=${MBEDTLS_SRC}`,
  ]
  const r = spawnSync('make', ['-s', '-f', 'native/build.mk', ...vars, target], { cwd: repoRoot, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`make ${target} (run ./build.sh asan first): ${r.stderr}`)
}
