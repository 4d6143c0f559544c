'use strict';
'require view';
'require form';
'require uci';

/*
 * ugate settings: the uci file /etc/config/ugate.
 *
 * Every validator below repeats the daemon's own check of the same value
 * (ugate sources: src/core/uci-config.ts reads the uci file into the JSON
 * config, src/core/config.ts, rules.ts, nft.ts and address.ts check it), so
 * a form that LuCI saves is a config that `ugate check` accepts. Values are
 * checked the way the uci reader turns them into the JSON config: numbers
 * are "-?digits[.digits]", list options item by item.
 *
 * Cross-field checks (unique names, listen address clashes, the capture
 * listener, mark vs. router_self) read the other fields through
 * liveValue(): the field's widget when it is on the page, else the uci
 * value (a grid row's options live in uci while another row's modal is open).
 */

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/; /* listener and upstream names */
const PRINTABLE_RE = /^[\x21-\x7e]{1,64}$/; /* rule names, a rule's listener names */
const HOST_LABEL_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const DOMAIN_LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const KEYWORD_RE = /^[a-z0-9._-]{1,253}$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC_RE = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/;
const NUMBER_RE = /^-?[0-9]+(?:\.[0-9]+)?$/; /* what the uci reader takes as a number */
const CONTROL_RE = /[\x00-\x1f]/;

const LISTENER_TYPES = [
	['mixed', _('SOCKS and HTTP proxy (mixed)')],
	['socks', _('SOCKS4/4a/5 proxy')],
	['http', _('HTTP proxy')],
	['forward', _('Port forward')],
	['redirect', _('Transparent (nftables redirect)')],
	['sni', _('TLS SNI / HTTP Host router')]
];

/* Seconds the daemon accepts for each duration (config.ts SECONDS). */
const SECONDS = {
	handshake_timeout: [0.001, 3600],
	idle_timeout: [0, 2147483],
	connect_timeout: [0.001, 3600],
	shutdown_grace: [0, 3600],
	sniff_timeout: [0.001, 60]
};

/* ---- addresses (the daemon's rules/ip.ts and address.ts) ------------------------ */

/* Dotted quad without leading zeros: the 4 octets, or null. */
function parseIPv4(s) {
	const parts = String(s).split('.');

	if (parts.length !== 4) return null;

	const octets = [];

	for (const p of parts) {
		if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p) || +p > 255) return null;

		octets.push(+p);
	}

	return octets;
}

/* IPv6 text (with "::" and a trailing dotted quad, no zone id): the 8 groups, or null. */
function parseIPv6(s) {
	s = String(s);

	const groups = [];
	let gap = -1,
		i = 0;

	if (s.indexOf(':') < 0 || s.length > 64) return null;

	if (s.substring(0, 2) === '::') {
		gap = 0;
		i = 2;
	}

	while (i < s.length) {
		const hex = /^[0-9A-Fa-f]{0,5}/.exec(s.substring(i))[0];

		if (s.charAt(i + hex.length) === '.') {
			/* a dotted quad takes the last two groups */
			const v4 = groups.length <= 6 ? parseIPv4(s.substring(i)) : null;

			if (!v4) return null;

			groups.push(v4[0] * 256 + v4[1], v4[2] * 256 + v4[3]);
			i = s.length;
			break;
		}

		if (hex.length === 0 || hex.length > 4 || groups.length >= 8) return null;

		groups.push(parseInt(hex, 16));
		i += hex.length;

		if (i === s.length) break;

		if (s.charAt(i) !== ':') return null;

		i++;

		if (s.charAt(i) === ':') {
			if (gap >= 0) return null;

			gap = groups.length;
			i++;
		} else if (i === s.length) {
			return null; /* a single trailing ':' */
		}
	}

	if (gap < 0) return groups.length === 8 ? groups : null;

	if (groups.length > 7) return null;

	const tail = groups.splice(gap);

	while (groups.length + tail.length < 8) groups.push(0);

	return groups.concat(tail);
}

/* 4, 6, or 0 when s is not an IP address. */
function ipFamily(s) {
	if (String(s).indexOf(':') < 0) return parseIPv4(s) ? 4 : 0;

	return parseIPv6(s) ? 6 : 0;
}

/* "ADDR" or "ADDR/LEN": { family, groups (IPv6), len }, or null. */
function parseCidr(text) {
	text = String(text);

	const slash = text.indexOf('/'),
		addr = slash < 0 ? text : text.substring(0, slash),
		family = ipFamily(addr),
		max = family === 4 ? 32 : 128;

	if (family === 0) return null;

	let len = max;

	if (slash >= 0) {
		const lenText = text.substring(slash + 1);

		if (!/^(?:0|[1-9][0-9]{0,2})$/.test(lenText) || +lenText > max) return null;

		len = +lenText;
	}

	return { family: family, groups: family === 6 ? parseIPv6(addr) : null, len: len };
}

/* An IPv4-mapped IPv6 prefix (inside ::ffff:0:0/96): the daemon routes it as IPv4. */
function isMappedPrefix(c) {
	return (
		c.family === 6 &&
		c.len >= 96 &&
		c.groups.slice(0, 5).every(function (g) {
			return g === 0;
		}) &&
		c.groups[5] === 0xffff
	);
}

/* One spelling per address, for comparing listen addresses. */
function ipKey(addr) {
	const v4 = parseIPv4(addr);

	if (v4) return v4.join('.');

	const v6 = parseIPv6(addr);

	return v6
		? v6
				.map(function (g) {
					return g.toString(16);
				})
				.join(':')
		: String(addr);
}

/* RFC 1123 host name as address.ts reads it (also '_'; last label not all digits). */
function isHostName(s) {
	if (s.length === 0 || s.length > 253) return false;

	const labels = s.split('.');

	return (
		labels.every(function (l) {
			return HOST_LABEL_RE.test(l);
		}) && !/^[0-9]+$/.test(labels[labels.length - 1])
	);
}

/* A rule's domain (rules.ts domainName): the lower-case name, or an error string in .error. */
function checkDomain(v, suffix) {
	let s = String(v).toLowerCase();

	if (s.charAt(s.length - 1) === '.') s = s.substring(0, s.length - 1);

	if (suffix && (s.charAt(0) === '.' || s.substring(0, 2) === '*.'))
		return { error: _('write it without the leading "." or "*.": a suffix already matches the names below it') };

	if (s.length === 0 || s.length > 253) return { error: _('a domain name has 1-253 characters') };

	if (/[^\x00-\x7f]/.test(s)) return { error: _('write non-ASCII names in punycode ("xn--...")') };

	if (
		!s.split('.').every(function (l) {
			return DOMAIN_LABEL_RE.test(l);
		})
	)
		return { error: _('labels are 1-63 of a-z 0-9 _ -, without "-" at either end') };

	return { name: s };
}

/* A forward action's host: an IP address, or a domain name whose last label is not all digits. */
function isForwardHost(h) {
	if (ipFamily(h) !== 0) return true;

	const d = checkDomain(h, false);

	return !d.error && !/(^|\.)[0-9]+$/.test(d.name);
}

/* ---- value checks: true or an error message ---------------------------------------- */

/* A uci number that is an integer from min to max. */
function checkInteger(value, min, max) {
	const n = +value;

	if (!NUMBER_RE.test(value) || !Number.isInteger(n) || n < min || n > max)
		return _('Expecting: %s').format(_('a whole number from %d to %d').format(min, max));

	return true;
}

/* A uci number of seconds within the daemon's range. */
function checkSeconds(value, range) {
	const n = +value;

	if (!NUMBER_RE.test(value) || !isFinite(n) || n < range[0] || n > range[1])
		return _('Expecting: %s').format(_('a number of seconds from %s to %s').format(range[0], range[1]));

	return true;
}

/* A port as address.ts parses it inside HOST:PORT ("0" allowed for listening). */
function checkEndpointPort(value, min) {
	if (!/^[0-9]{1,5}$/.test(value) || +value < min || +value > 65535)
		return _('Expecting: %s').format(_('a port from %d to 65535').format(min));

	return true;
}

/* A listener's target (endpoint "target"): HOST:PORT, IPv6 in brackets. */
function checkTarget(text) {
	let host, port;

	if (text.charAt(0) === '[') {
		const close = text.indexOf(']');

		if (close < 0) return _('missing "]" after the IPv6 address');

		if (text.charAt(close + 1) !== ':') return _('missing ":PORT" after "]"');

		host = text.substring(1, close);
		port = text.substring(close + 2);

		if (!parseIPv6(host)) return _('"%s" is not an IPv6 address').format(host);
	} else {
		const colon = text.lastIndexOf(':');

		if (colon < 0) return _('Expecting: %s').format('HOST:PORT');

		host = text.substring(0, colon);
		port = text.substring(colon + 1);

		if (host.indexOf(':') >= 0) return _('an IPv6 address needs brackets, e.g. "[2001:db8::1]:443"');

		if (host === '') return _('missing HOST before ":"');
	}

	if (checkEndpointPort(port, 1) !== true) return _('port "%s" is not a number from 1 to 65535').format(port);

	if (!parseIPv4(host) && !parseIPv6(host) && !isHostName(host))
		return _('"%s" is not an IP address or host name').format(host);

	return true;
}

/* A rule's forward target (rules.ts splitHostPort): HOST:PORT, IPv6 in brackets, port without leading zeros. */
function checkForward(text) {
	let host, port;

	if (text.charAt(0) === '[') {
		const close = text.indexOf(']');

		if (close < 0 || text.charAt(close + 1) !== ':') return _('an IPv6 host is written "[ADDR]:PORT"');

		host = text.substring(1, close);
		port = text.substring(close + 2);

		if (ipFamily(host) !== 6) return _('"%s" is not an IPv6 address').format(host);
	} else {
		const colon = text.lastIndexOf(':');

		if (colon <= 0) return _('Expecting: %s').format('HOST:PORT');

		host = text.substring(0, colon);
		port = text.substring(colon + 1);

		if (host.indexOf(':') >= 0) return _('an IPv6 address needs brackets, e.g. "[2001:db8::1]:443"');
	}

	if (!/^[1-9][0-9]{0,4}$/.test(port) || +port > 65535)
		return _('port "%s" is not a number from 1 to 65535').format(port);

	if (!isForwardHost(host)) return _('"%s" is not an IP address or host name').format(host);

	return true;
}

/* A SOCKS5 / HTTP Basic credential: 1-255 characters, no control characters. */
function checkCredential(v) {
	if (v.length === 0 || v.length > 255 || CONTROL_RE.test(v)) return false;

	return true;
}

/* A listener's "user:password" entry. */
function checkUser(v) {
	const colon = v.indexOf(':');

	if (colon <= 0 || colon === v.length - 1) return _('Expecting: %s').format('user:password');

	if (!checkCredential(v.substring(0, colon)) || !checkCredential(v.substring(colon + 1)))
		return _('user and password are 1-255 characters each, without control characters');

	return true;
}

function checkCidr(v) {
	return parseCidr(v) ? true : _('"%s" is not an IPv4/IPv6 address or CIDR').format(v);
}

function checkPortRange(v) {
	const m = /^([1-9][0-9]{0,4})(?:-([1-9][0-9]{0,4}))?$/.exec(v),
		lo = m ? +m[1] : 0,
		hi = m ? +(m[2] || m[1]) : 0;

	if (!m || lo > 65535 || hi > 65535 || lo > hi)
		return _('Expecting: %s').format(_('a port (1-65535) or a range like 8000-8080'));

	return true;
}

function isTrue(v) {
	return ['1', 'true', 'yes', 'on', 'enabled'].indexOf(String(v)) >= 0;
}

/*
 * Wrap a check of one non-empty value as an option validator. Empty values
 * pass: whether an option may be empty is up to its rmempty/optional flags.
 */
function validator(check) {
	return function (section_id, value) {
		if (value == null || value === '') return true;

		return check.call(this, String(value), section_id);
	};
}

/* ---- reading other fields ------------------------------------------------------------ */

/*
 * The value of option `opt` of section `sid`: its widget's when it is on
 * the page (map.root exists once the map has rendered), else uci's.
 */
function liveValue(map, sid, opt) {
	const found = map && map.root ? map.lookupOption(opt, sid) : null;

	if (found) {
		const v = found[0].formvalue(found[1]);

		if (v != null) return v;
	}

	return uci.get('ugate', sid, opt);
}

/*
 * The listeners or upstreams with the names the daemon gives them: the
 * `name` option, else the section's own name, else listener1, listener2, ...
 * `map` null: uci values only (before the map has rendered).
 */
function namedSections(map, type) {
	return uci.sections('ugate', type).map(function (s, i) {
		const name = liveValue(map, s['.name'], 'name');

		return {
			sid: s['.name'],
			name: name != null && name !== '' ? String(name) : s['.anonymous'] ? type + (i + 1) : s['.name']
		};
	});
}

/*
 * Replace an option's choices ([ key, label ] pairs, no duplicate keys).
 * Called from load(), which form.Map runs again after every save, so the
 * lists follow added and renamed listeners and upstreams.
 */
function setChoices(option, choices) {
	option.keylist = [];
	option.vallist = [];

	choices.forEach(function (c) {
		if (option.keylist.indexOf(c[0]) < 0) option.value(c[0], c[1]);
	});
}

/* Names unique among the sections of one type (config.ts checkUnique, upstreams). */
function checkUniqueName(option, section_id, value, type) {
	if (!NAME_RE.test(value)) return _('Expecting: %s').format(_('1-64 letters, digits, "_" or "-"'));

	const other = namedSections(option.map, type).filter(function (n) {
		return n.sid !== section_id && n.name === value;
	});

	return other.length ? _('"%s" is already the name of another %s').format(value, type) : true;
}

/* ---- the view ---------------------------------------------------------------------- */

return view.extend({
	load() {
		return uci.load('ugate');
	},

	render() {
		const m = new form.Map(
			'ugate',
			_('ugate'),
			_(
				'A tiny TCP gateway: SOCKS and HTTP proxy, port forwarding, SNI routing and transparent capture. ' +
					'Rules pick, per connection, to go direct, reject, forward or chain through an upstream proxy.'
			)
		);
		let s, o;

		/* ---- general ---- */

		s = m.section(form.NamedSection, 'main', 'ugate', _('General'));
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('limits', _('Limits and timeouts'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.rmempty = false;

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'));
		o.value('error', _('Errors'));
		o.value('warn', _('Warnings'));
		o.value('info', _('Information'));
		o.value('debug', _('Debug'));
		o.default = 'info';

		o = s.taboption(
			'general',
			form.Flag,
			'splice',
			_('Relay with splice()'),
			_('Relay payload inside the kernel. Turn off only to debug.')
		);
		o.default = '1';
		o.rmempty = false;

		o = s.taboption(
			'general',
			form.Value,
			'mark',
			_('Firewall mark'),
			_(
				"SO_MARK of ugate's outbound connections (0 = none). Transparent capture of the router's own traffic needs a non-zero mark."
			)
		);
		o.datatype = 'uinteger';
		o.placeholder = '0';
		o.validate = function (section_id, value) {
			if (value != null && value !== '') {
				const r = checkInteger(value, 0, 4294967295);

				if (r !== true) return r;
			}

			/* config.ts/nft.ts: capture of the router's own traffic skips ugate's connections by this mark */
			if (
				(value == null || value === '' || +value === 0) &&
				isTrue(liveValue(this.map, 'capture', 'enabled')) &&
				isTrue(liveValue(this.map, 'capture', 'router_self'))
			)
				return _(
					"Capturing the router's own traffic needs a non-zero mark, or ugate would capture its own connections"
				);

			return true;
		};

		o = s.taboption(
			'general',
			form.Value,
			'admin_socket',
			_('Admin socket'),
			_(
				'Unix socket that "ugate ctl" and the status page ask, e.g. /var/run/ugate.sock. Empty = none: the status page then has nothing to show.'
			)
		);
		o.validate = validator(function (v) {
			if (v.charAt(0) !== '/' || v.length > 107 || CONTROL_RE.test(v))
				return _('Expecting: %s').format(_('an absolute path of at most 107 characters'));

			return true;
		});

		o = s.taboption(
			'limits',
			form.Value,
			'max_connections',
			_('Max. connections'),
			_('Live connections at once, over all listeners (0 = no limit).')
		);
		o.datatype = 'uinteger';
		o.placeholder = '1024';
		o.validate = validator(function (v) {
			return checkInteger(v, 0, 1000000);
		});

		o = s.taboption(
			'limits',
			form.Value,
			'max_per_source',
			_('Max. connections per client'),
			_('Live connections from one source address (0 = no limit).')
		);
		o.datatype = 'uinteger';
		o.placeholder = '256';
		o.validate = validator(function (v) {
			return checkInteger(v, 0, 1000000);
		});

		const durations = [
			[
				'handshake_timeout',
				_('Handshake timeout'),
				_('Seconds a client has to finish its SOCKS or HTTP request.'),
				'10'
			],
			[
				'idle_timeout',
				_('Idle timeout'),
				_('Seconds without traffic before a connection is closed (0 = never).'),
				'900'
			],
			['connect_timeout', _('Connect timeout'), _('Seconds to wait for an outbound connection.'), '10'],
			['shutdown_grace', _('Shutdown grace'), _('Seconds live connections may finish when ugate stops.'), '5'],
			[
				'sniff_timeout',
				_('Sniff timeout'),
				_('Seconds to wait for a TLS ClientHello or HTTP request head on captured connections.'),
				'0.3'
			]
		];

		durations.forEach(function (d) {
			o = s.taboption('limits', form.Value, d[0], d[1], d[2]);
			o.datatype = 'ufloat';
			o.placeholder = d[3];
			o.validate = validator(function (v) {
				return checkSeconds(v, SECONDS[d[0]]);
			});
		});

		o = s.taboption(
			'limits',
			form.Value,
			'sniff_max_bytes',
			_('Sniff buffer'),
			_('Bytes read at most to find a TLS server name or HTTP host.')
		);
		o.datatype = 'uinteger';
		o.placeholder = '16384';
		o.validate = validator(function (v) {
			return checkInteger(v, 64, 65536);
		});

		/* ---- listeners ---- */

		s = m.section(form.GridSection, 'listener', _('Listeners'), _('Where ugate accepts connections.'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;
		s.modaltitle = function (section_id) {
			return _('Listener') + ' ' + (uci.get('ugate', section_id, 'name') || '');
		};

		o = s.option(form.Value, 'name', _('Name'));
		o.rmempty = false;
		o.validate = function (section_id, value) {
			return value == null || value === '' ? true : checkUniqueName(this, section_id, String(value), 'listener');
		};

		o = s.option(form.ListValue, 'type', _('Type'));
		LISTENER_TYPES.forEach(function (t) {
			o.value(t[0], t[1]);
		});
		o.default = 'mixed';
		o.rmempty = false;

		o = s.option(
			form.Value,
			'address',
			_('Address'),
			_('IP address to listen on: 127.0.0.1, 0.0.0.0 (all IPv4), :: (all IPv6), ...')
		);
		o.datatype = 'ipaddr';
		o.placeholder = '127.0.0.1';
		o.rmempty = false;
		o.validate = validator(function (v) {
			return ipFamily(v) ? true : _('Expecting: %s').format(_('an IPv4 or IPv6 address, without brackets or prefix'));
		});

		o = s.option(form.Value, 'port', _('Port'), _('0 = any free port.'));
		o.datatype = 'port';
		o.rmempty = false;
		o.validate = validator(function (v, section_id) {
			const r = checkEndpointPort(v, 0);

			if (r !== true || +v === 0) return r;

			/*
			 * address.ts listenAddressesClash: the same port on the same
			 * address, or on a wildcard of the same family; "::" is
			 * dual-stack and holds the port for IPv4 too.
			 */
			const addr = String(liveValue(this.map, section_id, 'address') || ''),
				family = ipFamily(addr),
				any4 = '0.0.0.0',
				any6 = '0:0:0:0:0:0:0:0';

			if (!family) return true;

			const clash = namedSections(this.map, 'listener').filter(function (n) {
				if (n.sid === section_id) return false;

				const a = String(liveValue(this.map, n.sid, 'address') || ''),
					p = String(liveValue(this.map, n.sid, 'port') || ''),
					ka = ipKey(a),
					kb = ipKey(addr);

				if (!ipFamily(a) || !/^[0-9]{1,5}$/.test(p) || +p !== +v) return false;

				if (ipFamily(a) !== family) return ka === any6 || kb === any6;

				return ka === kb || ka === any4 || ka === any6 || kb === any4 || kb === any6;
			}, this);

			return clash.length ? _('%s port %s is already used by listener "%s"').format(addr, v, clash[0].name) : true;
		});

		o = s.option(
			form.DynamicList,
			'allow',
			_('Allowed clients'),
			_(
				'Source addresses or CIDRs that may connect. Empty = loopback and private ranges (127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, fc00::/7).'
			)
		);
		o.datatype = 'ipaddr';
		o.modalonly = true;
		o.validate = validator(checkCidr);

		o = s.option(
			form.DynamicList,
			'users',
			_('Users'),
			_('user:password entries; when set, clients must authenticate (SOCKS5 user/password, HTTP Basic).')
		);
		o.depends('type', 'mixed');
		o.depends('type', 'socks');
		o.depends('type', 'http');
		o.modalonly = true;
		o.validate = function (section_id, value) {
			const list = L.toArray(this.formvalue(section_id)),
				users = list.map(function (u) {
					return String(u).split(':')[0];
				});

			if (value == null || value === '') {
				/* the whole list: config.ts rejects a user listed twice */
				for (let i = 0; i < users.length; i++)
					if (users.indexOf(users[i]) !== i) return _('User "%s" is listed twice').format(users[i]);

				return true;
			}

			const r = checkUser(String(value));

			if (r !== true) return r;

			const user = String(value).split(':')[0],
				count = users.filter(function (u) {
					return u === user;
				}).length;

			if (count > 1 || (count === 1 && list.indexOf(String(value)) < 0))
				return _('User "%s" is listed twice').format(user);

			return true;
		};

		o = s.option(form.Value, 'target', _('Target'), _('HOST:PORT every connection is forwarded to.'));
		o.depends('type', 'forward');
		o.rmempty = false;
		o.modalonly = true;
		o.placeholder = '192.168.1.10:80';
		o.validate = validator(checkTarget);

		o = s.option(form.Value, 'tls_port', _('TLS port'), _('Port dialed for a TLS server name.'));
		o.depends('type', 'sni');
		o.datatype = 'port';
		o.placeholder = '443';
		o.modalonly = true;
		o.validate = validator(function (v) {
			return checkInteger(v, 1, 65535);
		});

		o = s.option(form.Value, 'http_port', _('HTTP port'), _('Port dialed for an HTTP Host without a port.'));
		o.depends('type', 'sni');
		o.datatype = 'port';
		o.placeholder = '80';
		o.modalonly = true;
		o.validate = validator(function (v) {
			return checkInteger(v, 1, 65535);
		});

		o = s.option(form.Value, 'backlog', _('Backlog'), _('Pending connections the kernel queues.'));
		o.datatype = 'uinteger';
		o.placeholder = '511';
		o.modalonly = true;
		o.validate = validator(function (v) {
			return checkInteger(v, 1, 65535);
		});

		/* ---- rules ---- */

		s = m.section(
			form.GridSection,
			'rule',
			_('Rules'),
			_(
				'Checked from top to bottom: the first rule that matches picks the action; no match = direct. ' +
					'A rule matches when all of its conditions hold; a list condition holds when one of its values matches.'
			)
		);
		s.anonymous = true;
		s.addremove = true;
		s.sortable = true;
		s.nodescriptions = true;
		s.modaltitle = function (section_id) {
			return _('Rule') + ' ' + (uci.get('ugate', section_id, 'name') || '');
		};

		o = s.option(form.Value, 'name', _('Name'));
		o.validate = validator(function (v) {
			return PRINTABLE_RE.test(v) ? true : _('Expecting: %s').format(_('1-64 printable characters without spaces'));
		});

		o = s.option(form.DynamicList, 'domain', _('Domains'), _('Host names matched exactly.'));
		o.validate = validator(function (v) {
			return checkDomain(v, false).error || true;
		});

		o = s.option(
			form.DynamicList,
			'domain_suffix',
			_('Domain suffixes'),
			_('example.com matches example.com and every name below it.')
		);
		o.validate = validator(function (v) {
			return checkDomain(v, true).error || true;
		});

		o = s.option(form.DynamicList, 'domain_keyword', _('Domain keywords'), _('Text found anywhere in the host name.'));
		o.modalonly = true;
		o.validate = validator(function (v) {
			return KEYWORD_RE.test(v.toLowerCase()) ? true : _('Expecting: %s').format(_('1-253 of a-z 0-9 . _ -'));
		});

		o = s.option(form.DynamicList, 'dst_cidr', _('Destination addresses'), _('IPv4/IPv6 addresses or CIDRs.'));
		o.datatype = 'ipaddr';
		o.modalonly = true;
		o.validate = validator(checkCidr);

		o = s.option(form.DynamicList, 'dst_port', _('Destination ports'), _('Ports or ranges like 8000-8080.'));
		o.datatype = 'portrange';
		o.validate = validator(checkPortRange);

		o = s.option(form.DynamicList, 'src_cidr', _('Client addresses'), _('IPv4/IPv6 addresses or CIDRs.'));
		o.datatype = 'ipaddr';
		o.modalonly = true;
		o.validate = validator(checkCidr);

		o = s.option(form.DynamicList, 'listener', _('Listeners'), _('Names of the listeners the connection came in on.'));
		o.load = function (section_id) {
			setChoices(
				this,
				namedSections(null, 'listener').map(function (n) {
					return [n.name];
				})
			);
			return this.super('load', [section_id]);
		};
		o.modalonly = true;
		o.validate = validator(function (v) {
			return PRINTABLE_RE.test(v) ? true : _('Expecting: %s').format(_('a listener name'));
		});

		o = s.option(form.MultiValue, 'proto', _('Protocols'), _('The protocol sniffed on the connection.'));
		o.value('tls', 'TLS');
		o.value('http', 'HTTP/1');
		o.value('h2', 'HTTP/2');
		o.value('unknown', _('Unknown'));
		o.modalonly = true;
		o.validate = validator(function (v) {
			return this.keylist.indexOf(v) >= 0 ? true : _('Expecting: %s').format('tls, http, h2, unknown');
		});

		o = s.option(form.ListValue, 'action', _('Action'));
		o.value('direct', _('Direct'));
		o.value('reject', _('Reject'));
		o.value('upstream', _('Upstream proxy'));
		o.value('forward', _('Forward to'));
		o.default = 'direct';
		o.rmempty = false;

		o = s.option(form.ListValue, 'upstream', _('Upstream'));
		o.depends('action', 'upstream');
		o.rmempty = false;
		o.load = function (section_id) {
			const names = namedSections(null, 'upstream').map(function (n) {
					return n.name;
				}),
				choices = names.map(function (n) {
					return [n];
				});

			/* a reference to a missing upstream stays visible, so that its check can report it */
			uci.sections('ugate', 'rule').forEach(function (r) {
				if (r.upstream != null && names.indexOf(r.upstream) < 0)
					choices.push([r.upstream, _('%s (not configured)').format(r.upstream)]);
			});

			setChoices(this, choices);
			return this.super('load', [section_id]);
		};
		o.validate = validator(function (v) {
			const names = namedSections(this.map, 'upstream').map(function (n) {
				return n.name;
			});

			return names.indexOf(v) >= 0
				? true
				: _('Upstream "%s" is not configured (known: %s)').format(v, names.join(', ') || _('none'));
		});

		o = s.option(form.Value, 'forward', _('Forward to'), _('HOST:PORT; IPv6 in brackets: [2001:db8::5]:22.'));
		o.depends('action', 'forward');
		o.rmempty = false;
		o.validate = validator(checkForward);

		/* ---- upstreams ---- */

		s = m.section(form.GridSection, 'upstream', _('Upstream proxies'), _('Proxies that rules can chain through.'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;
		s.modaltitle = function (section_id) {
			return _('Upstream') + ' ' + (uci.get('ugate', section_id, 'name') || '');
		};

		o = s.option(form.Value, 'name', _('Name'));
		o.rmempty = false;
		o.validate = function (section_id, value) {
			return value == null || value === '' ? true : checkUniqueName(this, section_id, String(value), 'upstream');
		};

		o = s.option(form.ListValue, 'type', _('Type'));
		o.value('socks5', 'SOCKS5');
		o.value('http', _('HTTP (CONNECT)'));
		o.default = 'socks5';
		o.rmempty = false;

		o = s.option(form.Value, 'server', _('Server'), _('IP address or host name.'));
		o.datatype = 'host';
		o.rmempty = false;
		o.validate = validator(function (v) {
			return ipFamily(v) || isHostName(v) ? true : _('"%s" is not an IP address or host name').format(v);
		});

		o = s.option(form.Value, 'port', _('Port'));
		o.datatype = 'port';
		o.rmempty = false;
		o.validate = validator(function (v) {
			return checkEndpointPort(v, 1);
		});

		/* config.ts: username and password come together, 1-255 characters each */
		const credential = function (other) {
			return function (section_id, value) {
				const mine = value == null ? '' : String(value),
					theirs = String(this.section.formvalue(section_id, other) || '');

				if (mine === '' && theirs === '') return true;

				if (mine === '') return _('Set both user name and password, or neither');

				return checkCredential(mine)
					? true
					: _('Expecting: %s').format(_('1-255 characters without control characters'));
			};
		};

		o = s.option(form.Value, 'username', _('User name'));
		o.modalonly = true;
		o.validate = credential('password');

		o = s.option(form.Value, 'password', _('Password'));
		o.password = true;
		o.modalonly = true;
		o.validate = credential('username');

		/* ---- transparent capture ---- */

		s = m.section(
			form.NamedSection,
			'capture',
			'capture',
			_('Transparent capture'),
			_(
				'Redirect TCP connections from LAN devices (and optionally the router itself) to a redirect listener with nftables, in ugate\'s own table "inet ugate".'
			)
		);
		s.addremove = false;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.rmempty = false;

		o = s.option(
			form.ListValue,
			'listener',
			_('Redirect listener'),
			_('A listener of type "Transparent (nftables redirect)" on :: (or on 0.0.0.0 without IPv6 capture).')
		);
		o.optional = true;
		o.load = function (section_id) {
			const choices = namedSections(null, 'listener')
				.filter(function (n) {
					return uci.get('ugate', n.sid, 'type') === 'redirect';
				})
				.map(function (n) {
					return [n.name];
				});
			const current = uci.get('ugate', section_id, 'listener');

			/* a wrong name stays visible, so that its check can report it */
			if (
				current != null &&
				current !== '' &&
				!choices.some(function (c) {
					return c[0] === current;
				})
			)
				choices.push([current, _('%s (not a redirect listener)').format(current)]);

			setChoices(this, choices);
			return this.super('load', [section_id]);
		};
		o.validate = function (section_id, value) {
			if (!isTrue(this.section.formvalue(section_id, 'enabled'))) return true;

			if (value == null || value === '') return _('Choose the redirect listener that captured connections go to');

			const l = namedSections(this.map, 'listener').filter(function (n) {
				return n.name === value;
			})[0];

			if (!l) return _('"%s" is not the name of a listener').format(value);

			if (liveValue(this.map, l.sid, 'type') !== 'redirect') return _('"%s" is not a redirect listener').format(value);

			/*
			 * config.ts: REDIRECT sends connections to the incoming
			 * interface's address, so only a wildcard listener gets them;
			 * IPv6 capture needs "::", which takes both families.
			 */
			const addr = String(liveValue(this.map, l.sid, 'address') || ''),
				family = ipFamily(addr),
				wildcard4 = family === 4 && ipKey(addr) === '0.0.0.0',
				wildcard6 = family === 6 && ipKey(addr) === '0:0:0:0:0:0:0:0';

			if (!wildcard4 && !wildcard6)
				return _('"%s" listens on %s: a listener for capture must listen on :: (both families) or 0.0.0.0').format(
					value,
					addr
				);

			if (!wildcard6 && isTrue(this.section.formvalue(section_id, 'ipv6')))
				return _('"%s" listens on %s (IPv4 only): for "Capture IPv6" it must listen on ::').format(value, addr);

			return true;
		};

		o = s.option(
			form.DynamicList,
			'lan',
			_('LAN devices'),
			_('Network devices whose incoming connections are captured. Empty = br-lan.')
		);
		o.datatype = 'netdevname';
		o.placeholder = 'br-lan';
		o.validate = validator(function (v) {
			return IFNAME_RE.test(v) ? true : _('Expecting: %s').format(_('an interface name (1-15 of A-Z a-z 0-9 _ . -)'));
		});

		o = s.option(form.DynamicList, 'ports', _('Ports'), _('Destination TCP ports to capture. Empty = 80 and 443.'));
		o.datatype = 'port';
		o.validate = validator(function (v) {
			return /^[0-9]{1,10}$/.test(v) && +v >= 1 && +v <= 65535
				? true
				: _('Expecting: %s').format(_('a port from 1 to 65535'));
		});

		o = s.option(
			form.Flag,
			'router_self',
			_("Capture the router's own traffic"),
			_('Needs a non-zero firewall mark (General).')
		);
		o.rmempty = false;

		o = s.option(form.Flag, 'ipv6', _('Capture IPv6'));
		o.default = '1';
		o.rmempty = false;

		const cidrList = function (name, title, description) {
			o = s.option(form.DynamicList, name, title, description);
			o.datatype = 'ipaddr';
			o.validate = function (section_id, value) {
				if (value == null || value === '') return true;

				const c = parseCidr(value);

				if (!c) return checkCidr(value);

				if (isMappedPrefix(c)) return _('write IPv4-mapped addresses as IPv4');

				/* nft.ts: an IPv6 include list needs IPv6 capture */
				if (
					name === 'include_src' &&
					c.family === 6 &&
					isTrue(this.section.formvalue(section_id, 'enabled')) &&
					!isTrue(this.section.formvalue(section_id, 'ipv6'))
				)
					return _('IPv6 sources need "Capture IPv6"');

				return true;
			};
		};

		cidrList(
			'bypass',
			_('Bypassed destinations'),
			_('Never captured, in addition to the loopback, private, link-local and multicast ranges.')
		);
		cidrList(
			'include_src',
			_('Only these clients'),
			_('When set (here or by MAC), only these source addresses are captured.')
		);
		cidrList('exclude_src', _('Not these clients'));

		o = s.option(form.DynamicList, 'include_mac', _('Only these MAC addresses'));
		o.datatype = 'macaddr';
		o.validate = validator(function (v) {
			return MAC_RE.test(v) ? true : _('Expecting: %s').format('aa:bb:cc:dd:ee:ff');
		});

		o = s.option(form.DynamicList, 'exclude_mac', _('Not these MAC addresses'));
		o.datatype = 'macaddr';
		o.validate = validator(function (v) {
			return MAC_RE.test(v) ? true : _('Expecting: %s').format('aa:bb:cc:dd:ee:ff');
		});

		return m.render();
	}
});
