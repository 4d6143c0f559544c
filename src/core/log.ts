// Log levels and the one line format:
//   2026-11-25T07:30:00.123Z info <event> key=value key="value with spaces"
// Pure: the clock and the output are passed in, so formatting is testable.

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export function isLogLevel(s: unknown): s is LogLevel {
  return typeof s === 'string' && (LOG_LEVELS as readonly string[]).includes(s)
}

/** Whether a line at `level` is written when the configured level is `threshold`. */
export function levelEnabled(threshold: LogLevel, level: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(threshold)
}

export type FieldValue = string | number | boolean | undefined
/** Key order is kept; undefined values are left out. */
export type Fields = Record<string, FieldValue>

/**
 * A value as written after "key=": bare when unambiguous, else double-quoted
 * with escapes. Control characters always force quoting so a peer-supplied
 * string can never start a fake log line.
 */
export function formatValue(v: string | number | boolean): string {
  if (typeof v !== 'string') return String(v) // numbers and booleans never need quoting
  if (isBare(v)) return v
  return '"' + v.replace(/[\\"\x00-\x1f\x7f]/g, escapeChar) + '"'
}

/**
 * Whether `s` may be written unquoted: not empty, and no whitespace, '"', '=',
 * '\\' or control character. A char scan: cheaper per access-line field than a
 * regex match.
 */
function isBare(s: string): boolean {
  if (s === '') return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c <= 0x20 || c === 0x22 || c === 0x3d || c === 0x5c || c === 0x7f) return false
    // what \s matches beyond ASCII: U+00A0, U+1680, U+2000-U+200A, U+2028/9, U+202F, U+205F, U+3000, U+FEFF
    if (c >= 0x80 && isUnicodeSpace(c)) return false
  }
  return true
}

function isUnicodeSpace(c: number): boolean {
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  )
}

function escapeChar(c: string): string {
  switch (c) {
    case '\\':
      return '\\\\'
    case '"':
      return '\\"'
    case '\n':
      return '\\n'
    case '\r':
      return '\\r'
    case '\t':
      return '\\t'
    default:
      return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')
  }
}

function formatFields(fields: Fields): string {
  let out = ''
  for (const key of Object.keys(fields)) {
    const v = fields[key]
    if (v !== undefined) out += ` ${key}=${formatValue(v)}`
  }
  return out
}

/** One log line, without the trailing newline. */
export function formatLine(wallMs: number, level: LogLevel, event: string, fields: Fields = {}): string {
  return `${new Date(wallMs).toISOString()} ${level} ${event}${formatFields(fields)}`
}

/** What the access line `conn` says about one client connection, at its close. */
export interface AccessRecord {
  listener: string
  /** Client address, IP:PORT. */
  src: string
  /** Requested destination, HOST:PORT. */
  dst: string
  /** Bytes client → server and server → client. */
  up: number
  down: number
  /** From accept to close. */
  ms: number
  /** 'eof', 'idle', 'shutdown', 'client-error:ECONNRESET', 'connect-timeout', ... */
  reason: string
  /** Whether splice(2) moved any byte. */
  splice: boolean
}

export function accessFields(r: AccessRecord): Fields {
  return {
    listener: r.listener,
    src: r.src,
    dst: r.dst,
    up: r.up,
    down: r.down,
    ms: Math.round(r.ms),
    reason: r.reason,
    splice: r.splice ? 1 : 0,
  }
}

/** The relay's reason joined with its errno name: 'client-error:ECONNRESET'. */
export function relayReason(reason: string, error: string): string {
  return error === '' ? reason : `${reason}:${error}`
}

export interface Logger {
  readonly level: LogLevel
  enabled(level: LogLevel): boolean
  error(event: string, fields?: Fields): void
  warn(event: string, fields?: Fields): void
  info(event: string, fields?: Fields): void
  debug(event: string, fields?: Fields): void
  /**
   * Whole lines formatted elsewhere (native/mod_gate.c's access lines), each
   * `TIME LEVEL event key=value…` and ending in "\n", written as they are.
   */
  lines(level: LogLevel, text: string): void
}

/** A logger whose level can change while it runs, and whose lines can be watched (admin API). */
export interface ControlledLogger extends Logger {
  setLevel(level: LogLevel): void
  /** `fn` gets every line written from now on (level, `event key=value…`); returns the unsubscribe. */
  subscribe(fn: (level: LogLevel, message: string) => void): () => void
}

/**
 * A logger writing whole lines (no newline) to `write`, dropping those below
 * `threshold`. `write` also gets the level and the line without time and
 * level (`event key=value…`), for sinks that carry those themselves (syslog).
 * `writeText`, if given, takes a batch of lines as one text (newlines
 * included) while no one watches: one write for a batch of access lines.
 */
export function createLogger(
  threshold: LogLevel,
  wallClock: () => number,
  write: (line: string, level: LogLevel, message: string) => void,
  writeText?: (text: string) => void,
): ControlledLogger {
  // Decided per level change: every call (one access line per connection) tests a boolean.
  const on = { error: true, warn: true, info: true, debug: true }
  let level = threshold
  const setLevel = (l: LogLevel) => {
    level = l
    for (const x of LOG_LEVELS) on[x] = levelEnabled(l, x)
  }
  setLevel(threshold)
  let watchers: Array<(level: LogLevel, message: string) => void> = []
  const out = (line: string, lvl: LogLevel) => {
    const message = line.slice(line.indexOf(' ', line.indexOf(' ') + 1) + 1)
    write(line, lvl, message)
    for (const w of watchers) w(lvl, message)
  }
  const emit = (lvl: LogLevel) => (event: string, fields?: Fields) => {
    if (on[lvl]) out(formatLine(wallClock(), lvl, event, fields), lvl)
  }
  return {
    get level() {
      return level
    },
    enabled: (l) => on[l],
    error: emit('error'),
    warn: emit('warn'),
    info: emit('info'),
    debug: emit('debug'),
    lines(lvl, text) {
      if (!on[lvl] || text === '') return
      if (writeText && watchers.length === 0) return writeText(text)
      const lines = text.split('\n')
      for (let i = 0; i < lines.length - 1; i++) out(lines[i]!, lvl)
    },
    setLevel,
    subscribe(fn) {
      watchers = [...watchers, fn]
      return () => {
        watchers = watchers.filter((w) => w !== fn)
      }
    },
  }
}
