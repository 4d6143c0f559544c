import { readFileSync } from 'node:fs'
import t from 'tap'
import { MAX_MESSAGE, syslogDatagram } from '../../src/core/syslog.js'

// logd (ubox log/syslog.c) takes <PRI>, then drops 16 characters when the
// 16th is a space: the timestamp syslog(3) writes.
function logdReads(d: string): { priority: number; text: string } {
  const m = /^<(\d{1,3})>(.*)$/s.exec(d)!
  let text = m[2]!
  if (text.length > 16 && text[15] === ' ') text = text.slice(16)
  return { priority: Number(m[1]), text }
}

t.test('each level at its priority, with facility daemon', async (t) => {
  const date = new Date(2026, 11, 5, 9, 4, 7)
  t.equal(syslogDatagram('info', 'ready listeners=1', 42, date), '<30>Dec  5 09:04:07 ugate[42]: ready listeners=1')
  t.same(
    (['error', 'warn', 'info', 'debug'] as const).map((l) => logdReads(syslogDatagram(l, 'x', 7, date))),
    [27, 28, 30, 31].map((priority) => ({ priority, text: 'ugate[7]: x' })),
  )
  t.equal(syslogDatagram('info', 'x', 1, new Date(2026, 0, 15, 23, 59, 59)).slice(0, 20), '<30>Jan 15 23:59:59 ')
})

t.test('long messages are cut below logd line size', async (t) => {
  const d = syslogDatagram('info', 'a'.repeat(5000), 1, new Date())
  t.ok(d.length < 1024)
  t.ok(d.endsWith('a'.repeat(10) + '…'))
  t.equal(logdReads(d).text.length, 'ugate[1]: '.length + MAX_MESSAGE + 1)
})

t.test('the real logread shows what the datagrams said (test/fixtures/syslog)', async (t) => {
  const lines = readFileSync(new URL('../fixtures/syslog/logread-real.txt', import.meta.url), 'utf8')
    .trim()
    .split('\n')
  const prio = lines.map((l) => /(daemon\.\w+) ugate\[\d+\]: (\S+)/.exec(l)!.slice(1, 3))
  t.same(prio.slice(2, 5), [
    ['daemon.warn', 'ubus-unavailable'],
    ['daemon.info', 'ready'],
    ['daemon.err', 'reload-failed'],
  ])
})
