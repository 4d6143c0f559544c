import t from 'tap'
import { AddressError, CliError, ConfigError, StartupError, show } from '../../src/core/errors.js'

t.test('show', async (t) => {
  t.equal(show('a"b'), '"a\\"b"')
  t.equal(show(5), '5')
  t.equal(show(null), 'null')
  t.equal(show(undefined), 'undefined')
  t.equal(show(NaN), 'NaN')
  t.equal(show({ a: [1] }), '{"a":[1]}')
  t.equal(show('y'.repeat(100)).length, 80)
})

t.test('error classes', async (t) => {
  const e = new ConfigError('dial.mark', '-1 is bad')
  t.equal(e.message, 'dial.mark: -1 is bad')
  t.equal(e.name, 'ConfigError')
  t.equal(new ConfigError('', 'x').message, 'x')
  t.ok(new CliError('m') instanceof Error)
  t.equal(new CliError('m').name, 'CliError')
  t.equal(new AddressError('m').name, 'AddressError')
  t.equal(new StartupError('m').name, 'StartupError')
})
