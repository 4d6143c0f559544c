// ugate under strace(1): started wrapped by it (straced), or attached to a
// running ugate (straceAttach, where StartOptions.wrap cannot be used: netns).
// Syscall-count checks (a hang-up watch per dial, splice calls,
// reads per datagram) use it where ugate's own counters cannot tell.

import { spawn } from 'node:child_process'
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

/**
 * Trace `syscalls` (strace's `-e trace=` list) of a ugate started with `.opts`;
 * `flags`: more of strace's options (`-yy`: every fd with its socket's addresses).
 */
export function straced(t: Test, syscalls: string, flags: string[] = []): Straced {
  const out = join(tempDir(t, 'ugate-strace-'), 'strace')
  // LeakSanitizer cannot run under ptrace; everything else of ASan still does.
  const asan = process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:detect_leaks=0` : 'detect_leaks=0'
  return {
    opts: { wrap: ['strace', '-f', '-q', ...flags, '-e', `trace=${syscalls}`, '-o', out], env: { ASAN_OPTIONS: asan } },
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

/**
 * Attach strace to a running ugate (all its threads: netns and StartOptions.wrap
 * do not combine) for `trace`; resolves once every thread is attached. `stop`
 * detaches (SIGINT) and returns the trace's lines.
 */
export async function straceAttach(t: Test, pid: number, dir: string, trace: string) {
  const out = join(dir, `strace-${pid}`)
  const st = spawn('strace', ['-f', '-e', `trace=${trace}`, '-o', out, '-p', String(pid)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  const exited = new Promise<number | null>((res) => st.on('exit', (code) => res(code)))
  t.teardown(() => {
    if (st.exitCode === null) st.kill('SIGKILL')
  })
  let err = ''
  await new Promise<void>((res, rej) => {
    st.stderr.on('data', (d: Buffer) => {
      err += d.toString()
      // "Process N attached with K threads" (or "Process N attached": one thread)
      if (/Process \d+ attached/.test(err)) res()
    })
    void exited.then((code) => rej(new Error(`strace exited (${code}) before attaching: ${err}`)))
  })
  return {
    async stop() {
      st.kill('SIGINT')
      await exited
      return readFileSync(out, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0)
    },
  }
}

/**
 * A trace of several threads, each call on one line: strace -f splits a call
 * another thread interrupted into `NAME(args <unfinished ...>` and
 * `<... NAME resumed>rest`; this joins the halves (by pid) where the first stood.
 */
export function joinResumed(lines: string[]): string[] {
  const out: string[] = []
  const open = new Map<string, number>() // pid → index in out of its unfinished call
  for (const l of lines) {
    const pid = /^(\d+)\s/.exec(l)?.[1] ?? ''
    const resumed = /^\d+\s+<\.\.\. \w+ resumed>\s?(.*)$/.exec(l)
    const at = open.get(pid)
    if (resumed && at !== undefined) {
      out[at] = out[at]!.replace(/\s*<unfinished \.\.\.>$/, '') + resumed[1]!
      open.delete(pid)
      continue
    }
    if (/<unfinished \.\.\.>$/.test(l)) open.set(pid, out.length)
    out.push(l)
  }
  return out
}
