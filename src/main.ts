// Entry point: argv → command → run it. Usage and config errors exit 2,
// runtime failures exit 1; both print "ugate: <message>" to stderr.

import { type Command, helpText, parseArgs } from './core/cli.js'
import { type Config, captureOptions } from './core/config.js'
import { CliError, ConfigError, StartupError } from './core/errors.js'
import { nftRuleset } from './core/nft.js'
import { UciError } from './core/uci.js'
import { VERSION } from './core/version.js'
import { loadRunConfig } from './io/config-file.js'
import { initIdentity, showIdentity } from './io/identity.js'
import { runCtl } from './io/ctl.js'
import { startGateway } from './io/gateway.js'
import { stderrLogger, syslogLogger } from './io/log-sink.js'
import { argv, engineVersion, exit, writeStderr, writeStdout } from './io/process.js'
import { sniffQuicFiles } from './io/quic.js'

function main(): void {
  const cmd: Command = parseArgs(argv)
  switch (cmd.kind) {
    case 'help':
      writeStdout(helpText())
      return exit(0)
    case 'version':
      writeStdout(`ugate ${VERSION} (quickjs-ng ${engineVersion})\n`)
      return exit(0)
    case 'check':
      loadRunConfig({ configFile: cmd.configFile, forwards: [] })
      writeStdout('config ok\n')
      return exit(0)
    case 'nft': {
      const config = loadRunConfig({ configFile: cmd.configFile, forwards: [] })
      writeStdout(nftText(config))
      return exit(0)
    }
    case 'sniff-quic':
      return exit(sniffQuicFiles(cmd.files, cmd.packets) ? 0 : 1)
    case 'identity-init':
      initIdentity(cmd.dir, cmd.id, cmd.days, cmd.force)
      return exit(0)
    case 'identity-show':
      showIdentity(cmd.dir)
      return exit(0)
    case 'ctl':
      // Asks a running gateway over its admin socket; exits from the callback.
      return runCtl(cmd)
    case 'run': {
      const config = loadRunConfig(cmd.options)
      // The sink is chosen once: a reload changes the level of neither.
      const log =
        config.log.syslog !== '' ? syslogLogger(config.log.level, config.log.syslog) : stderrLogger(config.log.level)
      log.info('starting', { version: VERSION, listeners: config.listeners.length })
      // From here on the event loop drives everything; the gateway exits the process.
      // SIGHUP reloads the same file with the same flags.
      startGateway(config, log, () => loadRunConfig(cmd.options))
      return
    }
  }
}

/** The ruleset `run` would load; the capture listener must have a fixed port. */
function nftText(config: Config): string {
  const c = config.capture
  if (!c.enabled) throw new ConfigError('capture.enabled', 'is false: there is no ruleset to print')
  const fixedPort = (key: 'listener' | 'dnsListener' | 'udpListener'): number => {
    const l = config.listeners.find((x) => x.name === c[key])!
    if (l.listen.port === 0)
      throw new ConfigError(`capture.${key}`, `${c[key]} listens on port 0: the port is only known at run time`)
    return l.listen.port
  }
  return nftRuleset(
    captureOptions(
      config,
      fixedPort('listener'),
      c.dns ? fixedPort('dnsListener') : 0,
      c.udp ? fixedPort('udpListener') : 0,
    ),
  )
}

function fail(e: unknown): never {
  if (e instanceof CliError || e instanceof ConfigError || e instanceof UciError) {
    writeStderr(`ugate: ${e.message}\n`)
    return exit(2)
  }
  if (e instanceof StartupError) {
    writeStderr(`ugate: ${e.message}\n`)
    return exit(1)
  }
  const detail = e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e)
  writeStderr(`ugate: internal error: ${detail}\n`)
  return exit(1)
}

try {
  main()
} catch (e) {
  fail(e)
}
