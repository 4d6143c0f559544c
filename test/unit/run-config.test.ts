import t from 'tap'
import { parseArgs } from '../../src/core/cli.js'
import { type ForwardListenerConfig, validateConfig } from '../../src/core/config.js'
import { defaultConfigJson } from '../../src/core/defaults.js'
import { runConfig } from '../../src/core/run-config.js'

const runOpts = (...argv: string[]) => {
  const cmd = parseArgs(['run', ...argv])
  if (cmd.kind !== 'run') throw new Error('not run')
  return cmd.options
}

const file = {
  relay: { idleTimeout: 60 },
  listeners: [{ name: 'web', type: 'forward', listen: '0.0.0.0:8080', target: '10.0.0.2:80' }],
}

t.test('embedded default config', async (t) => {
  const config = validateConfig(defaultConfigJson())
  t.equal(config.log.level, 'info')
  t.equal(config.relay.splice, true)
  t.same(config.listeners, [
    {
      name: 'default',
      type: 'mixed',
      listen: { host: '127.0.0.1', port: 1080, kind: 'ipv4' },
      backlog: 511,
      allow: ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
      users: [],
      udpIdleTimeoutMs: 60000,
    },
  ])
  t.equal(config.capture.enabled, false)
  t.same(config.rules, [])
  t.not(defaultConfigJson(), defaultConfigJson(), 'a fresh object each call')
})

t.test('no --config, no --forward: the default', async (t) => {
  t.same(runConfig(undefined, runOpts()), validateConfig(defaultConfigJson()))
})

t.test('--forward alone replaces the default', async (t) => {
  const c = runConfig(undefined, runOpts('--forward', '127.0.0.1:0=localhost:80', '--forward', '[::1]:7000=[::1]:5201'))
  t.same(
    c.listeners.map((l) => l.name),
    ['fwd1', 'fwd2'],
  )
  t.same(c.listeners[0]!.listen, { host: '127.0.0.1', port: 0, kind: 'ipv4' })
  t.same((c.listeners[0] as ForwardListenerConfig).target, { host: 'localhost', port: 80, kind: 'name' })
  t.same(c.listeners[1]!.listen, { host: '::1', port: 7000, kind: 'ipv6' })
})

t.test('--config with --forward: forwards are added', async (t) => {
  const c = runConfig(file, runOpts('--forward', '127.0.0.1:6000=127.0.0.1:5201'))
  t.same(
    c.listeners.map((l) => l.name),
    ['web', 'fwd1'],
  )
  t.equal(c.relay.idleTimeoutMs, 60000, 'file values kept')
  t.same(file.listeners.length, 1, 'the file object is not modified')
})

t.test('flags override file values', async (t) => {
  const c = runConfig(
    { ...file, log: { level: 'error' }, relay: { splice: true, idleTimeout: 60, shutdownGrace: 9 } },
    runOpts('--log-level', 'debug', '--no-splice', '--idle-timeout', '5', '--grace', '1'),
  )
  t.same(c.log, { level: 'debug', syslog: '' })
  t.same(c.relay, { splice: false, idleTimeoutMs: 5000, shutdownGraceMs: 1000 })
  const s = runConfig({ ...file, log: { syslog: '' } }, runOpts('--log-syslog', '/dev/log'))
  t.same(s.log, { level: 'info', syslog: '/dev/log' }, '--log-syslog overrides log.syslog (an old config has none)')
  t.throws(() => runConfig(file, runOpts('--log-syslog', 'dev/log')), { name: 'ConfigError', message: /log\.syslog/ })
})

t.test('conflicts between file and forwards are config errors', async (t) => {
  t.throws(() => runConfig(file, runOpts('--forward', '127.0.0.1:8080=127.0.0.1:1')), {
    name: 'ConfigError',
    message: 'listeners[1].listen: "127.0.0.1:8080" is already used by listeners[0] ("web", 0.0.0.0:8080)',
  })
  const named = { listeners: [{ name: 'fwd1', type: 'forward', listen: '127.0.0.1:1', target: '127.0.0.1:2' }] }
  t.throws(() => runConfig(named, runOpts('--forward', '127.0.0.1:3=127.0.0.1:4')), {
    message: 'listeners[1].name: "fwd1" is already the name of listeners[0]',
  })
})

t.test('a malformed file is reported, not hidden by flags', async (t) => {
  t.throws(() => runConfig([1], runOpts('--no-splice')), { message: 'config: expected an object, got [1]' })
  t.throws(() => runConfig({ ...file, relay: 'fast' }, runOpts('--no-splice')), {
    message: 'relay: expected an object, got "fast"',
  })
  t.throws(() => runConfig({ listeners: 'x' }, runOpts('--forward', '127.0.0.1:1=127.0.0.1:2')), {
    message: 'listeners: expected an array, got "x"',
  })
})
