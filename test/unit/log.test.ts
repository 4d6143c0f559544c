import t from 'tap'
import {
  accessFields,
  createLogger,
  formatLine,
  formatValue,
  isLogLevel,
  levelEnabled,
  relayReason,
} from '../../src/core/log.js'

const T = Date.UTC(2026, 10, 25, 7, 30, 0, 123)
const ISO = '2026-11-25T07:30:00.123Z'

t.test('formatValue', async (t) => {
  const cases: Array<[string | number | boolean, string]> = [
    ['plain', 'plain'],
    [42, '42'],
    [true, 'true'],
    ['127.0.0.1:80', '127.0.0.1:80'],
    ['[::1]:80', '[::1]:80'],
    ['client-error:ECONNRESET', 'client-error:ECONNRESET'],
    ['', '""'],
    ['a b', '"a b"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['k=v', '"k=v"'],
    ['back\\slash', '"back\\\\slash"'],
    ['line\nbreak', '"line\\nbreak"'],
    ['tab\there', '"tab\\there"'],
    ['bell\x07', '"bell\\u0007"'],
  ]
  for (const [v, want] of cases) t.equal(formatValue(v), want, JSON.stringify(v))
})

t.test('formatValue quotes exactly the characters \\s, ", =, \\ and controls match', async (t) => {
  // Every UTF-16 code unit, alone and inside a word: quoted iff the regex the
  // char scan replaced matches.
  const needsQuotes = /[\s"=\\\x00-\x1f\x7f]/
  const wrong: string[] = []
  for (let c = 0; c <= 0xffff; c++) {
    const ch = String.fromCharCode(c)
    for (const s of [ch, `a${ch}b`]) {
      const quoted = formatValue(s).startsWith('"')
      if (quoted !== needsQuotes.test(s)) wrong.push(`U+${c.toString(16)}`)
    }
  }
  t.same(wrong, [])
  t.equal(formatValue(''), '""')
})

t.test('formatLine', async (t) => {
  t.equal(formatLine(T, 'info', 'ready', { listeners: 2 }), '2026-11-25T07:30:00.123Z info ready listeners=2')
  t.equal(formatLine(T, 'info', 'stopped'), '2026-11-25T07:30:00.123Z info stopped')
  t.equal(
    formatLine(T, 'warn', 'accept-paused', { name: 'iperf', error: 'EMFILE', skipped: undefined, ms: 1000 }),
    '2026-11-25T07:30:00.123Z warn accept-paused name=iperf error=EMFILE ms=1000',
  )
  t.equal(
    formatLine(T, 'debug', 'dns-failed', { host: 'x.invalid', error: 'Name or service not known' }),
    '2026-11-25T07:30:00.123Z debug dns-failed host=x.invalid error="Name or service not known"',
  )
})

t.test('access line', async (t) => {
  const fields = accessFields({
    listener: 'iperf',
    src: '127.0.0.1:40000',
    dst: '127.0.0.1:5201',
    up: 1024,
    down: 2048,
    ms: 12.6,
    reason: relayReason('client-error', 'ECONNRESET'),
    splice: true,
  })
  t.equal(
    formatLine(T, 'info', 'conn', fields),
    '2026-11-25T07:30:00.123Z info conn listener=iperf src=127.0.0.1:40000 dst=127.0.0.1:5201 ' +
      'up=1024 down=2048 ms=13 reason=client-error:ECONNRESET splice=1',
  )
  const failed = accessFields({
    listener: 'x',
    src: '[::1]:5',
    dst: 'localhost:80',
    up: 0,
    down: 0,
    ms: 0,
    reason: 'connect-timeout',
    splice: false,
  })
  t.equal(
    formatLine(T, 'info', 'conn', failed),
    '2026-11-25T07:30:00.123Z info conn listener=x src=[::1]:5 dst=localhost:80 up=0 down=0 ms=0 reason=connect-timeout splice=0',
  )
})

t.test('relayReason', async (t) => {
  t.equal(relayReason('eof', ''), 'eof')
  t.equal(relayReason('idle', ''), 'idle')
  t.equal(relayReason('server-error', 'EPIPE'), 'server-error:EPIPE')
})

t.test('levels', async (t) => {
  t.ok(isLogLevel('warn'))
  t.notOk(isLogLevel('trace'))
  t.notOk(isLogLevel(1))
  t.ok(levelEnabled('info', 'error'))
  t.ok(levelEnabled('info', 'info'))
  t.notOk(levelEnabled('info', 'debug'))
  t.ok(levelEnabled('debug', 'debug'))
  t.notOk(levelEnabled('error', 'warn'))
})

t.test('createLogger honors the level', async (t) => {
  const lines: string[] = []
  const log = createLogger(
    'warn',
    () => T,
    (l) => lines.push(l),
  )
  log.debug('a')
  log.info('b')
  log.warn('c', { k: 'v w' })
  log.error('d')
  t.same(lines, ['2026-11-25T07:30:00.123Z warn c k="v w"', '2026-11-25T07:30:00.123Z error d'])
  t.equal(log.level, 'warn')
  t.ok(log.enabled('error'))
  t.notOk(log.enabled('info'))
})

t.test('createLogger: lines formatted elsewhere, one write while unwatched', async (t) => {
  const writes: string[] = []
  const texts: string[] = []
  const log = createLogger(
    'info',
    () => T,
    (l, lvl, m) => writes.push(`${lvl}|${m}|${l}`),
    (text) => texts.push(text),
  )
  const batch = `${ISO} info conn a=1\n${ISO} info conn b="x y"\n`
  log.lines('info', batch)
  log.lines('info', '')
  log.lines('debug', batch)
  t.same([texts, writes], [[batch], []], 'the batch as one text; nothing below the level or empty')
  const seen: string[] = []
  const stop = log.subscribe((lvl, m) => seen.push(`${lvl}|${m}`))
  log.lines('info', batch)
  stop()
  t.same(seen, ['info|conn a=1', 'info|conn b="x y"'], 'a watcher gets each line')
  t.same(
    writes,
    [`info|conn a=1|${ISO} info conn a=1`, `info|conn b="x y"|${ISO} info conn b="x y"`],
    'written line by line',
  )
  t.same(texts, [batch], 'not as one text while watched')
})
