// Helpers to run the ugate binary in end-to-end tests.
//
// Synchronisation is event based: every wait resolves from the child's
// stderr 'data' events (or its 'close' event); timeouts only turn a hang
// into a failure.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import type { Test } from 'tap'
import { destroyClients, pollUntil } from './servers.js'
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Repository root (test/lib/ is two levels below it). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The binary under test: $UGATE_BIN or build/ugate, relative to the repo root. */
export const ugateBin = (() => {
  const p = process.env.UGATE_BIN || 'build/ugate'
  return isAbsolute(p) ? p : resolve(repoRoot, p)
})()

/** Stderr markers that mean the sanitizer build found a bug. */
export const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|runtime error:/

/** Default failure guard for waits, in ms. */
export const WAIT_MS = 20_000

/** Minimal view of a tap Test used by the helpers (keeps lib independent of tap types). */
export interface TestLike {
  teardown(fn: () => unknown): void
  comment(...args: unknown[]): void
}

export interface LogLine {
  raw: string
  time: string
  level: string
  event: string
  fields: Record<string, string>
}

/** Parse `<ISO-time> <level> <event> key=value ...`; null when the line has another shape. */
export function parseLogLine(raw: string): LogLine | null {
  const m = /^(\S+) (\S+) (\S+)(.*)$/.exec(raw)
  if (!m || !/^\d{4}-\d\d-\d\dT/.test(m[1]!)) return null
  const fields: Record<string, string> = {}
  const re = /(\S+?)=("(?:[^"\\]|\\.)*"|\S*)/g
  let f: RegExpExecArray | null
  while ((f = re.exec(m[4]!)) !== null) {
    let v = f[2]!
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string
      } catch {
        v = v.slice(1, -1)
      }
    }
    fields[f[1]!] = v
  }
  return { raw, time: m[1]!, level: m[2]!, event: m[3]!, fields }
}

export interface Listener {
  name: string
  type: string
  addr: string
  host: string
  port: number
}

export interface ExitResult {
  code: number | null
  signal: NodeJS.Signals | null
  stderr: string[]
  stdout: string
}

interface Waiter {
  re: RegExp
  count: number
  resolve: (lines: string[]) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

export interface StartOptions {
  /** Command prepended to the binary, e.g. ['strace', '-f', ...]. */
  wrap?: string[]
  /** Extra environment. */
  env?: NodeJS.ProcessEnv
  /** Wait for the `ready` line (default true). */
  waitReady?: boolean
  readyTimeoutMs?: number
  /**
   * Run ugate inside this network namespace: `ip netns exec NETNS ugate ...`.
   * `ip netns exec` execs in place, so the child's pid is ugate's (checked at
   * `ready`). Cannot be combined with `wrap`.
   */
  netns?: string
}

/** A running ugate process. */
export class Ugate {
  readonly proc: ChildProcess
  readonly lines: string[] = []
  stdout = ''
  listeners: Listener[] = []
  /** fd count of the ugate process right after `ready`. */
  baselineFds = -1
  /** What the baseline fds were (for failure messages). */
  baselineList: string[] = []
  /** Pid of ugate itself (differs from proc.pid when wrapped, e.g. by strace). */
  pid = -1
  exitResult: ExitResult | null = null
  readonly exited: Promise<ExitResult>
  private partial = ''
  private waiters: Waiter[] = []
  private readonly wrapped: boolean
  /** Network namespace ugate runs in (StartOptions.netns), if any. */
  readonly netns: string | undefined

  constructor(args: string[], opts: StartOptions = {}) {
    const wrap = opts.wrap ?? []
    if (opts.netns !== undefined && wrap.length > 0) throw new Error('StartOptions: netns and wrap cannot be combined')
    this.wrapped = wrap.length > 0
    this.netns = opts.netns
    let cmd = this.wrapped ? wrap[0]! : ugateBin
    let argv = this.wrapped ? [...wrap.slice(1), ugateBin, ...args] : args
    if (opts.netns !== undefined) {
      cmd = 'ip'
      argv = ['netns', 'exec', opts.netns, ugateBin, ...args]
    }
    this.proc = spawn(cmd, argv, {
      cwd: repoRoot,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    if (!this.wrapped && this.proc.pid !== undefined) this.pid = this.proc.pid
    this.proc.stderr!.setEncoding('utf8')
    this.proc.stdout!.setEncoding('utf8')
    this.proc.stdout!.on('data', (d: string) => {
      this.stdout += d
    })
    this.proc.stderr!.on('data', (d: string) => this.onData(d))
    this.exited = new Promise<ExitResult>((res) => {
      let spawnError: Error | null = null
      this.proc.on('error', (e) => {
        spawnError = e
        this.lines.push(`[spawn error] ${e.message}`)
      })
      this.proc.on('close', (code, signal) => {
        if (this.partial) {
          this.addLine(this.partial)
          this.partial = ''
        }
        this.exitResult = {
          code: spawnError ? -1 : code,
          signal,
          stderr: this.lines.slice(),
          stdout: this.stdout,
        }
        for (const w of this.waiters) {
          clearTimeout(w.timer)
          w.reject(
            new Error(
              `ugate exited (code=${code} signal=${signal}) while waiting for ${w.re}` +
                ` x${w.count}; stderr:\n${this.lines.join('\n')}`,
            ),
          )
        }
        this.waiters = []
        res(this.exitResult)
      })
    })
  }

  private onData(d: string) {
    const parts = (this.partial + d).split('\n')
    this.partial = parts.pop()!
    for (const l of parts) this.addLine(l)
  }

  private addLine(l: string) {
    this.lines.push(l)
    for (const w of this.waiters.slice()) {
      const m = this.matching(w.re)
      if (m.length >= w.count) {
        clearTimeout(w.timer)
        this.waiters.splice(this.waiters.indexOf(w), 1)
        w.resolve(m)
      }
    }
  }

  /** Lines seen so far matching re. */
  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l))
  }

  /** Parsed log lines of one event seen so far. */
  events(event: string): LogLine[] {
    return this.lines.map(parseLogLine).filter((l): l is LogLine => l !== null && l.event === event)
  }

  /** Resolve with the first line matching re (already seen or future). */
  async waitForLine(re: RegExp, timeoutMs = WAIT_MS): Promise<string> {
    const lines = await this.waitForLines(re, 1, timeoutMs)
    return lines[0]!
  }

  /** Resolve once `count` lines matching re have been seen; resolves with all of them. */
  waitForLines(re: RegExp, count: number, timeoutMs = WAIT_MS): Promise<string[]> {
    const m = this.matching(re)
    if (m.length >= count) return Promise.resolve(m)
    if (this.exitResult) {
      return Promise.reject(
        new Error(`ugate already exited; ${m.length}/${count} lines matching ${re}; stderr:\n${this.lines.join('\n')}`),
      )
    }
    return new Promise<string[]>((resolve, reject) => {
      const w: Waiter = {
        re,
        count,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1)
          reject(
            new Error(
              `timeout after ${timeoutMs}ms waiting for ${count} line(s) matching ${re}` +
                ` (have ${this.matching(re).length}); stderr:\n${this.lines.join('\n')}`,
            ),
          )
        }, timeoutMs),
      }
      this.waiters.push(w)
    })
  }

  /** Wait until `count` conn lines have been logged in total; returns them parsed. */
  async waitForConns(count: number, timeoutMs = WAIT_MS): Promise<LogLine[]> {
    await this.waitForLines(CONN_RE, count, timeoutMs)
    return this.events('conn')
  }

  /** Wait for `listening` and `ready` lines and record listeners, ugate pid, fd baseline. */
  async ready(timeoutMs = WAIT_MS): Promise<void> {
    const readyLine = await this.waitForLine(/ info ready /, timeoutMs)
    const n = Number(parseLogLine(readyLine)?.fields.listeners)
    this.listeners = this.events('listening').map((l) => {
      const addr = l.fields.addr ?? ''
      const m = /^\[?(.*?)\]?:(\d+)$/.exec(addr)
      return {
        name: l.fields.name ?? '',
        type: l.fields.type ?? '',
        addr,
        host: m ? m[1]! : '',
        port: m ? Number(m[2]) : NaN,
      }
    })
    // The admin HTTP server logs its socket as a listener too, but is not one of the config's.
    if (this.listeners.filter((l) => l.type !== 'admin').length !== n) {
      throw new Error(
        `ready says listeners=${n} but ${this.listeners.length} listening lines:\n${this.lines.join('\n')}`,
      )
    }
    if (this.wrapped) this.pid = findDescendant(this.proc.pid!, ugateBin)
    if (this.netns !== undefined) this.pid = execedPid(this.proc.pid!, ugateBin)
    this.baselineFds = this.fdCount()
    this.baselineList = this.fdList()
  }

  /** Port of a listener by name (default: the first one). */
  port(name?: string): number {
    const l = name === undefined ? this.listeners[0] : this.listeners.find((x) => x.name === name)
    if (!l || !Number.isInteger(l.port) || l.port <= 0) {
      throw new Error(`no listener ${name ?? '#0'} in:\n${this.lines.join('\n')}`)
    }
    return l.port
  }

  /** Number of open fds of the ugate process, from /proc/<pid>/fd. */
  fdCount(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length
  }

  /** Targets of the open fds, sockets with their addresses (for failure messages). */
  fdList(): string[] {
    const dir = `/proc/${this.pid}/fd`
    try {
      const sockets = socketTable(this.pid)
      return readdirSync(dir).map((fd) => {
        try {
          const target = readlinkSync(`${dir}/${fd}`)
          const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
          const what = inode === undefined ? undefined : sockets.get(inode)
          return `${fd} -> ${target}${what === undefined ? '' : ` ${what}`}`
        } catch {
          return fd
        }
      })
    } catch (e) {
      return [String(e)]
    }
  }

  /** Send a signal to ugate itself (not to a wrapper). */
  signal(sig: NodeJS.Signals): void {
    if (this.exitResult) return
    try {
      process.kill(this.pid > 0 ? this.pid : this.proc.pid!, sig)
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, then resolve with the exit result. SIGKILL + reject after timeoutMs. */
  async stop(timeoutMs = WAIT_MS): Promise<ExitResult> {
    this.signal('SIGTERM')
    return this.waitExit(timeoutMs)
  }

  /** Wait for the process to exit; SIGKILL + reject after timeoutMs. */
  async waitExit(timeoutMs = WAIT_MS): Promise<ExitResult> {
    let timer: NodeJS.Timeout | undefined
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill()
        reject(new Error(`ugate did not exit within ${timeoutMs}ms; stderr:\n${this.lines.join('\n')}`))
      }, timeoutMs)
    })
    try {
      return await Promise.race([this.exited, guard])
    } finally {
      clearTimeout(timer)
    }
  }

  /** SIGKILL ugate (and its wrapper). Safe to call at any time. */
  kill(): void {
    if (this.exitResult) return
    if (this.wrapped && this.pid <= 0) {
      // Kill the tracee first: a SIGKILLed tracer (strace) would leave it running.
      try {
        this.pid = findDescendant(this.proc.pid!, ugateBin)
      } catch {
        /* not started yet or gone */
      }
    }
    for (const pid of [this.pid, this.proc.pid]) {
      if (pid === undefined || pid <= 0) continue
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        /* gone */
      }
    }
  }

  /** Lines reporting sanitizer findings. */
  sanitizerLines(): string[] {
    return this.lines.filter((l) => SANITIZER_RE.test(l))
  }
}

export const CONN_RE = / info conn /

/** Find the pid of a descendant of `root` whose /proc/<pid>/exe is `bin` (e.g. under strace). */
export function findDescendant(root: number, bin: string): number {
  const kids = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const list = kids.get(ppid) ?? []
      list.push(Number(d))
      kids.set(ppid, list)
    } catch {
      /* raced with exit */
    }
  }
  const want = realpathSync(bin)
  const queue = [...(kids.get(root) ?? [])]
  while (queue.length) {
    const pid = queue.shift()!
    try {
      if (readlinkSync(`/proc/${pid}/exe`) === want) return pid
    } catch {
      /* ignore */
    }
    queue.push(...(kids.get(pid) ?? []))
  }
  throw new Error(`no descendant of ${root} runs ${bin}`)
}

/**
 * The pid running `bin` for a child started through a launcher that normally
 * execs in place (`ip netns exec`): the child itself, else a descendant.
 */
export function execedPid(pid: number, bin: string): number {
  try {
    if (readlinkSync(`/proc/${pid}/exe`) === realpathSync(bin)) return pid
  } catch {
    /* gone: findDescendant reports it */
  }
  return findDescendant(pid, bin)
}

/** Assert the binary exists; fail (never skip) if it does not. */
export function requireBinary(): void {
  if (!existsSync(ugateBin)) {
    throw new Error(`ugate binary not found at ${ugateBin} (build it with ./build.sh or set UGATE_BIN)`)
  }
}

/**
 * Start ugate, wait for `ready`, and register a teardown that kills it.
 * Throws (test failure) if it does not become ready.
 */
export async function startUgate(t: TestLike, args: string[], opts: StartOptions = {}): Promise<Ugate> {
  requireBinary()
  const ug = new Ugate(args, opts)
  t.teardown(() => {
    destroyClients()
    ug.kill()
  })
  if (opts.waitReady !== false) await ug.ready(opts.readyTimeoutMs)
  return ug
}

/** `--forward` argument builder. */
export function fwd(listen: string, target: string): string[] {
  return ['--forward', `${listen}=${target}`]
}

/** Run ugate to completion (CLI tests). */
export function runUgate(args: string[], timeoutMs = WAIT_MS): ExitResult {
  requireBinary()
  const r = spawnSync(ugateBin, args, { cwd: repoRoot, encoding: 'utf8', timeout: timeoutMs })
  return {
    code: r.status,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '').split('\n').filter((l) => l !== ''),
  }
}

/** The tap Test type used by the shared checks. */
export type AssertLike = Test

/**
 * The end of every network test: after waiting for `conns` conn lines,
 * the fd count must be back to the baseline; then SIGTERM must give
 * `stats` + `stopped`, exit status 0 and no sanitizer reports.
 */
export async function finish(t: AssertLike, ug: Ugate, conns: number): Promise<ExitResult> {
  if (conns > 0) await ug.waitForConns(conns)
  checkFds(t, ug)
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
  return res
}

/**
 * Wait (bounded, 10 s) for ugate's fd count to come back to the baseline
 * (plus `extra` fds meant to stay, e.g. pooled mesh connections): for
 * sockets ugate closes after an event of the peer's (an EOF, an idle sweep)
 * that this process cannot observe.
 */
export async function settleFds(ug: Ugate, extra = 0): Promise<void> {
  await pollUntil(
    () => ug.fdCount(),
    (n) => n === ug.baselineFds + extra,
    10_000,
  )
}

/** hex "0100007F:1F90" of /proc/net/tcp (or its 32-hex IPv6 form) as "127.0.0.1:8080". */
function procAddress(hex: string): string {
  const [ip, port] = hex.split(':') as [string, string]
  const words = ip.match(/.{8}/g) ?? []
  // Each 32-bit word is in host (little-endian) order.
  const bytes = words.flatMap((w) => [6, 4, 2, 0].map((i) => parseInt(w.slice(i, i + 2), 16)))
  const addr =
    bytes.length === 4
      ? bytes.join('.')
      : `[${Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(':')}]`
  return `${addr}:${parseInt(port, 16)}`
}

/** inode → "tcp 127.0.0.1:1 → 127.0.0.1:2 st 01" for the sockets of a process' namespace. */
function socketTable(pid: number): Map<string, string> {
  const table = new Map<string, string>()
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6', 'raw', 'raw6']) {
    let text = ''
    try {
      text = readFileSync(`/proc/${pid}/net/${proto}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10) continue
      table.set(f[9]!, `${proto} ${procAddress(f[1]!)} → ${procAddress(f[2]!)} st ${f[3]}`)
    }
  }
  try {
    for (const line of readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length >= 7) table.set(f[6]!, `unix ${f[7] ?? '(unnamed)'}`)
    }
  } catch {}
  return table
}

/** fd count equals the baseline taken after `ready`. */
export function checkFds(t: AssertLike, ug: Ugate): boolean {
  const now = ug.fdCount()
  return t.equal(now, ug.baselineFds, `ugate fd count back to baseline (${ug.baselineFds})`, {
    fds: ug.fdList(),
    baseline: ug.baselineList,
    lastLines: ug.lines.slice(-30),
  })
}

/** Exit 0, no signal, `stats` and `stopped` logged, no sanitizer output. */
export function checkCleanExit(t: AssertLike, ug: Ugate, res: ExitResult): void {
  t.same({ code: res.code, signal: res.signal }, { code: 0, signal: null }, 'ugate exits 0 after SIGTERM', {
    stderr: res.stderr,
  })
  t.ok(
    res.stderr.some((l) => / info stats /.test(l)),
    'stats line logged',
  )
  t.ok(
    res.stderr.some((l) => / info stopped/.test(l)),
    'stopped line logged',
  )
  t.same(ug.sanitizerLines(), [], 'no sanitizer reports on stderr')
}
