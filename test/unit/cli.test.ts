import t from 'tap'
import { type Command, helpText, parseArgs } from '../../src/core/cli.js'
import { CliError } from '../../src/core/errors.js'

const run = (options: Partial<Extract<Command, { kind: 'run' }>['options']>): Command => ({
  kind: 'run',
  options: { forwards: [], ...options },
})

t.test('commands', async (t) => {
  for (const a of [['help'], ['--help'], ['-h'], ['run', '--help'], ['run', '-h'], ['check', '--help']]) {
    t.same(parseArgs(a), { kind: 'help' }, a.join(' '))
  }
  for (const a of [['--version'], ['-V']]) t.same(parseArgs(a), { kind: 'version' }, a.join(' '))
  t.same(parseArgs(['check', '--config', 'a.json']), { kind: 'check', configFile: 'a.json' })
  t.same(parseArgs(['check', '--config=a.json']), { kind: 'check', configFile: 'a.json' })
  t.same(parseArgs(['sniff-quic', 'a.bin', 'b.bin']), { kind: 'sniff-quic', files: ['a.bin', 'b.bin'], packets: false })
  t.same(parseArgs(['sniff-quic', 'a.bin', '--packets']), { kind: 'sniff-quic', files: ['a.bin'], packets: true })
  t.same(parseArgs(['sniff-quic', '--help']), { kind: 'help' })
  t.throws(() => parseArgs(['sniff-quic', '--packets']), { message: /needs at least one FILE/ })
  t.throws(() => parseArgs(['sniff-quic', '--bogus', 'a.bin']), {
    message: /unknown option "--bogus" for "ugate sniff-quic"/,
  })
})

t.test('run options', async (t) => {
  t.same(parseArgs(['run']), run({}))
  t.same(parseArgs(['run', '--config', '/etc/ugate.json']), run({ configFile: '/etc/ugate.json' }))
  t.same(
    parseArgs([
      'run',
      '--forward',
      '127.0.0.1:6000=127.0.0.1:5201',
      '--forward=[::1]:6000=[::1]:5201',
      '--forward',
      '127.0.0.1:0=localhost:80',
    ]),
    run({
      forwards: [
        { listen: '127.0.0.1:6000', target: '127.0.0.1:5201' },
        { listen: '[::1]:6000', target: '[::1]:5201' },
        { listen: '127.0.0.1:0', target: 'localhost:80' },
      ],
    }),
  )
  t.same(
    parseArgs(['run', '--log-level', 'debug', '--no-splice', '--idle-timeout', '30', '--grace=0.5']),
    run({ logLevel: 'debug', splice: false, idleTimeout: 30, grace: 0.5 }),
  )
  t.same(parseArgs(['run', '--idle-timeout', '0']), run({ idleTimeout: 0 }))
  t.same(parseArgs(['run', '--log-syslog', '/dev/log']), run({ logSyslog: '/dev/log' }))
  t.same(parseArgs(['run', '--log-level', 'warn', '--log-level', 'error']), run({ logLevel: 'error' }), 'last wins')
})

t.test('errors name the bad value', async (t) => {
  const cases: Array<[string[], string]> = [
    [[], 'missing command (see "ugate --help")'],
    [['start'], 'unknown command "start" (see "ugate --help")'],
    [['--verbose'], 'unknown option "--verbose" (see "ugate --help")'],
    [['run', '--port', '1'], 'unknown option "--port" for "ugate run" (see "ugate --help")'],
    [['run', 'extra'], 'unexpected argument "extra" for "ugate run" (see "ugate --help")'],
    [['run', '--config'], 'option --config needs a value (FILE)'],
    [['run', '--config='], 'option --config needs a value (FILE)'],
    [['run', '--config', '--no-splice'], 'option --config needs a value (FILE)'],
    [['run', '--no-splice=1'], 'option --no-splice takes no value, got "1"'],
    [['run', '--log-level', 'verbose'], '--log-level: "verbose" is not one of error, warn, info, debug'],
    [
      ['run', '--idle-timeout', 'abc'],
      '--idle-timeout: "abc" is not a number of seconds from 0 to 2147483 (0 = never)',
    ],
    [['run', '--idle-timeout', '-1'], '--idle-timeout: "-1" is not a number of seconds from 0 to 2147483 (0 = never)'],
    [['run', '--grace', '9999'], '--grace: "9999" is not a number of seconds from 0 to 3600'],
    [['run', '--grace', '1e3'], '--grace: "1e3" is not a number of seconds from 0 to 3600'],
    [
      ['run', '--forward', '127.0.0.1:6000'],
      '--forward "127.0.0.1:6000": expected LISTEN=TARGET, e.g. 127.0.0.1:6000=127.0.0.1:5201',
    ],
    [['run', '--forward', 'a=b=c'], '--forward "a=b=c": expected LISTEN=TARGET, e.g. 127.0.0.1:6000=127.0.0.1:5201'],
    [
      ['run', '--forward', '127.0.0.1:6000=127.0.0.1:x'],
      '--forward "127.0.0.1:6000=127.0.0.1:x": "127.0.0.1:x" is not HOST:PORT (port "x" is not a number 1-65535)',
    ],
    [
      ['run', '--forward', 'localhost:6000=127.0.0.1:1'],
      '--forward "localhost:6000=127.0.0.1:1": "localhost:6000" is not a listen address (host "localhost" must be an IP address, e.g. 0.0.0.0 or [::])',
    ],
    [
      ['run', '--forward', '::1:6000=[::1]:1'],
      '--forward "::1:6000=[::1]:1": "::1:6000" is not HOST:PORT (an IPv6 address needs brackets, e.g. "[::1]:80")',
    ],
    [['check'], '"ugate check" needs --config FILE'],
    [['check', '--forward', 'a=b'], 'unknown option "--forward" for "ugate check" (see "ugate --help")'],
  ]
  for (const [argv, message] of cases) {
    t.throws(() => parseArgs(argv), { name: 'CliError', message }, argv.join(' ') || '(no arguments)')
  }
  t.throws(() => parseArgs(['nope']), CliError)
})

t.test('help lists every command and flag', async (t) => {
  const help = helpText()
  for (const word of [
    'run',
    'check',
    'sniff-quic',
    '--packets',
    'help',
    '--help',
    '-h',
    '--version',
    '-V',
    '--config',
    '--forward',
    '--log-level',
    '--log-syslog',
    '--no-splice',
    '--idle-timeout',
    '--grace',
  ]) {
    t.match(help, word, word)
  }
})

t.test('ctl: methods, --json, close ID', async (t) => {
  const sock = '/var/run/ugate.sock'
  t.same(parseArgs(['ctl', 'status']), { kind: 'ctl', socket: sock, method: 'status', json: false })
  t.same(parseArgs(['ctl', '--json', 'rules']), { kind: 'ctl', socket: sock, method: 'rules', json: true })
  t.same(parseArgs(['ctl', '--socket', '/tmp/a.sock', 'traffic', '--json']), {
    kind: 'ctl',
    socket: '/tmp/a.sock',
    method: 'traffic',
    json: true,
  })
  t.same(parseArgs(['ctl', 'close', '42', '--socket=/tmp/b']), {
    kind: 'ctl',
    socket: '/tmp/b',
    method: 'close',
    json: false,
    id: 42,
  })
  t.same(
    parseArgs(['ctl', 'close', 'udp-7']),
    { kind: 'ctl', socket: '/var/run/ugate.sock', method: 'close', json: false, id: 'udp-7' },
    'a UDP flow is closed by its API id',
  )
  t.same(parseArgs(['ctl', '--help']), { kind: 'help' })
  const bad: Array<[string[], string]> = [
    [['ctl'], '"ugate ctl" needs a method: status, connections, rules, traffic, close'],
    [['ctl', 'stats'], 'ctl: "stats" is not a method (known: status, connections, rules, traffic, close)'],
    [['ctl', 'close'], '"ugate ctl close" needs one connection ID (see "ugate ctl connections")'],
    [['ctl', 'close', 'x1'], 'ctl close: "x1" is not a connection ID (17, or udp-17 for a UDP flow)'],
    [['ctl', 'close', '0'], 'ctl close: "0" is not a connection ID (17, or udp-17 for a UDP flow)'],
    [['ctl', 'close', 'udp-0'], 'ctl close: "udp-0" is not a connection ID (17, or udp-17 for a UDP flow)'],
    [['ctl', 'close', 'udp-'], 'ctl close: "udp-" is not a connection ID (17, or udp-17 for a UDP flow)'],
    [['ctl', 'close', '1', '2'], '"ugate ctl close" needs one connection ID (see "ugate ctl connections")'],
    [['ctl', 'status', 'extra'], 'unexpected argument "extra" for "ugate ctl status" (see "ugate --help")'],
    [['ctl', '--json=1', 'status'], 'option --json takes no value, got "1"'],
    [['ctl', 'status', '--socket'], 'option --socket needs a value (PATH)'],
  ]
  for (const [argv, message] of bad) t.throws(() => parseArgs(argv), new CliError(message), argv.join(' '))
  t.match(helpText(), /ugate ctl \[--socket PATH\] \[--json\] close ID/)
})
