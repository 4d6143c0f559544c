// `ugate run --config FILE.json` (format as in README.md): listeners from
// the file, flags overriding file values, bad values exit 2.

import t from 'tap'
import { writeConfigFile } from '../lib/config.js'
import { echoRoundTrip, echoServer, prngBytes, sha256, within } from '../lib/servers.js'
import { finish, runUgate, SANITIZER_RE, startUgate } from '../lib/ugate.js'

function forwardConfig(target: string, splice: boolean) {
  return {
    log: { level: 'info' },
    relay: { splice, idleTimeout: 60, shutdownGrace: 2 },
    listeners: [{ name: 'cfg-fwd', type: 'forward', listen: '127.0.0.1:0', target }],
  }
}

for (const [name, splice, flags, want] of [
  ['listener from the config file', true, [], '1'],
  ['config splice=false', false, [], '0'],
  ['--no-splice overrides the config file', true, ['--no-splice'], '0'],
] as const) {
  t.test(name, async (t) => {
    const srv = await echoServer(t)
    const file = writeConfigFile(t, forwardConfig(srv.target, splice))
    const ug = await startUgate(t, ['run', '--config', file, ...flags])
    t.match(ug.listeners, [{ name: 'cfg-fwd', type: 'forward', host: '127.0.0.1' }], 'listener named as in the file')
    const payload = prngBytes(0xc0f, 200_000)
    const echoed = await within(echoRoundTrip(ug.port('cfg-fwd'), payload), 10_000, 'echo via config listener')
    t.equal(sha256(echoed), sha256(payload), 'payload echoed intact')
    const [conn] = await ug.waitForConns(1)
    t.match(
      conn!.fields,
      { listener: 'cfg-fwd', dst: srv.target, reason: 'eof', splice: want },
      `conn line splice=${want}`,
    )
    await finish(t, ug, 1)
  })
}

const badConfigs: Array<[string, unknown, string]> = [
  [
    'bad listen port in the config',
    { listeners: [{ name: 'x', type: 'forward', listen: '127.0.0.1:99999', target: '127.0.0.1:80' }] },
    '99999',
  ],
  ['unknown key in the config', { listeners: [], bogusKey: 1 }, 'bogusKey'],
  [
    'bad idle timeout in the config',
    {
      relay: { idleTimeout: 'forever' },
      listeners: [{ name: 'x', type: 'forward', listen: '127.0.0.1:0', target: '127.0.0.1:80' }],
    },
    'forever',
  ],
]

for (const [name, config, value] of badConfigs) {
  t.test(name, async (t) => {
    const file = writeConfigFile(t, config)
    const r = runUgate(['run', '--config', file])
    t.same({ code: r.code, signal: r.signal }, { code: 2, signal: null }, 'exit status 2', { stderr: r.stderr })
    t.ok(
      r.stderr.some((l) => l.includes(value)),
      `stderr names the bad value ${value}`,
      { stderr: r.stderr },
    )
    t.same(
      r.stderr.filter((l) => SANITIZER_RE.test(l)),
      [],
      'no sanitizer reports',
    )
  })
}
