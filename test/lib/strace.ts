// ugate under strace(1): the start options that wrap it, and the trace once it
// has exited. Syscall-count checks (a hang-up watch per dial, splice calls,
// reads per datagram) use it where ugate's own counters cannot tell.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { tempDir } from './temp.js'
import type { StartOptions } from './ugate.js'

export interface Straced {
  /** For startUgate/startConfig: strace -f wrapping the binary, LeakSanitizer off. */
  opts: Pick<StartOptions, 'wrap' | 'env'>
  /** The trace's lines, once ugate has exited; asserts that strace saw it exit 0. */
  lines(t: Test): string[]
}

/** Trace `syscalls` (strace's `-e trace=` list) of a ugate started with `.opts`. */
export function straced(t: Test, syscalls: string): Straced {
  const out = join(tempDir(t, 'ugate-strace-'), 'strace')
  // LeakSanitizer cannot run under ptrace; everything else of ASan still does.
  const asan = process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:detect_leaks=0` : 'detect_leaks=0'
  return {
    opts: { wrap: ['strace', '-f', '-q', '-e', `trace=${syscalls}`, '-o', out], env: { ASAN_OPTIONS: asan } },
    lines(t) {
      const trace = readFileSync(out, 'utf8').split('\n')
      t.ok(
        trace.some((l) => /\+\+\+ exited with 0 \+\+\+/.test(l)),
        'strace saw ugate exit 0',
      )
      return trace
    },
  }
}
