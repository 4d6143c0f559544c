import t from 'tap'
import { Cancel, CancelledError } from '../../src/core/cancel.js'
import { ConnTracker } from '../../src/core/conn-tracker.js'

t.test('Cancel', async (t) => {
  const c = new Cancel()
  const seen: string[] = []
  const off = c.onCancel((r) => seen.push(`a:${r}`))
  c.onCancel((r) => seen.push(`b:${r}`))
  off()
  t.notOk(c.cancelled)
  c.cancel('timeout')
  c.cancel('again')
  t.ok(c.cancelled)
  t.equal(c.reason, 'timeout')
  t.same(seen, ['b:timeout'])
  c.onCancel((r) => seen.push(`late:${r}`))
  t.same(seen, ['b:timeout', 'late:timeout'], 'late handlers run at once')
  t.throws(() => c.throwIfCancelled(), new CancelledError('timeout'))
})

t.test('child Cancel follows its parent until released', async (t) => {
  const parent = new Cancel()
  const child = new Cancel(parent)
  parent.cancel('shutdown')
  t.equal(child.reason, 'shutdown')

  const p2 = new Cancel()
  const released = new Cancel(p2)
  released.release()
  p2.cancel('shutdown')
  t.notOk(released.cancelled)

  const p3 = new Cancel()
  const own = new Cancel(p3)
  own.cancel('connect-timeout')
  t.notOk(p3.cancelled, 'a child does not cancel its parent')
  t.equal(new Cancel(p3).reason, undefined)
  p3.cancel('x')
  t.equal(new Cancel(p3).reason, 'x', 'born cancelled under a cancelled parent')
})

t.test('ConnTracker', async (t) => {
  const tracker = new ConnTracker()
  let idle = 0
  tracker.onIdle(() => idle++)
  t.equal(idle, 1, 'idle at once when empty')

  const a = tracker.open()
  const b = tracker.open()
  b.relaying()
  t.equal(tracker.size, 2)
  t.equal(tracker.dialing, 1)
  tracker.onIdle(() => idle++)
  tracker.cancelDialing('shutdown')
  t.equal(a.cancel.reason, 'shutdown')
  t.notOk(b.cancel.cancelled, 'relaying connections are left to the relay')
  a.done()
  a.done()
  t.equal(tracker.size, 1)
  t.equal(idle, 1)
  b.done()
  t.equal(tracker.size, 0)
  t.equal(idle, 2, 'idle callback runs when the last one ends')
  tracker.open().done()
  t.equal(idle, 2, 'idle callbacks run once')
})
