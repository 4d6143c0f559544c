// Entry point: argv → command → run it. Usage and config errors exit 2,
// runtime failures exit 1; both print "ugate: <message>" to stderr.

import { type Command, helpText, parseArgs } from './core/cli.js'
import { parseConfigText, validateConfig } from './core/config.js'
import { CliError, ConfigError, StartupError } from './core/errors.js'
import { runConfig } from './core/run-config.js'
import { VERSION } from './core/version.js'
import { startGateway } from './io/gateway.js'
import { stderrLogger } from './io/log-sink.js'
import { argv, engineVersion, exit, readConfigText, writeStderr, writeStdout } from './io/process.js'

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
      validateConfig(readConfigFile(cmd.configFile))
      writeStdout('config ok\n')
      return exit(0)
    case 'run': {
      const file = cmd.options.configFile
      const config = runConfig(file === undefined ? undefined : readConfigFile(file), cmd.options)
      const log = stderrLogger(config.log.level)
      log.info('starting', { version: VERSION, listeners: config.listeners.length })
      // From here on the event loop drives everything; the gateway exits the process.
      startGateway(config, log)
      return
    }
  }
}

function readConfigFile(path: string): unknown {
  return parseConfigText(readConfigText(path), path)
}

function fail(e: unknown): never {
  if (e instanceof CliError || e instanceof ConfigError) {
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
