#!/usr/bin/env python3
"""Writes the seed corpus fuzz/seeds/<target>/ (committed) and the dictionaries fuzz/dicts/.

The seeds are small; the input formats are described at the top of each fuzz_targets/*.rs and
in docs/reliability.md. Run again after changing a format: `python3 fuzz/make_seeds.py`.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAX = 64 * 1024


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- lines: [n_cuts][cut codes][n_runs][runs: pos_lo pos_hi byte len_code][data]
def lines(cuts=b"", runs=(), data=b""):
    out = bytes([len(cuts)]) + cuts + bytes([len(runs)])
    for pos, byte, code in runs:
        out += struct.pack("<HBB", pos, byte, code)
    return out + data


def run_code(length):
    """The len_code of a run of `length` bytes (only the lengths the format can express)."""
    if MAX - 8 <= length < MAX + 8:
        return (length - (MAX - 8)) % 16
    if 2 * MAX - 8 <= length < 2 * MAX + 8:
        return 64 + (length - (2 * MAX - 8)) % 16
    if length < 64:
        return 192 + length
    assert length % 1024 == 0 and length // 1024 < 64
    return 128 + length // 1024


def read_code(size):
    """The cut code of a read of `size` bytes."""
    if size < 128:
        return size
    if MAX - 8 <= size < MAX + 8:
        return 192 + size - (MAX - 8)
    assert (size - 1) % 1024 == 0
    return 128 + (size - 1) // 1024


write("lines", "edges", lines(data=b"a\r\nb\n\nc\r\r\nd\re\n\r\n\n"))
write("lines", "small-reads", lines(cuts=bytes([1, 2, 0, 3]), data=b"hello\r\nworld\r\n\r\n\nno newline"))
write("lines", "invalid-utf8", lines(cuts=bytes([1]), data=b"\xff\xfe\n\x00\n\xe2\x82\n\xc3"))
write("lines", "cr-at-eof", lines(cuts=bytes([2]), data=b"a\r"))
write("lines", "64k-exact", lines(runs=[(0, ord("x"), run_code(MAX))], data=b"\n"))
write("lines", "64k-plus-1", lines(cuts=bytes([read_code(4097)]), runs=[(0, ord("x"), run_code(MAX + 1))], data=b"\n"))
write("lines", "64k-crlf", lines(cuts=bytes([read_code(MAX + 1)]), runs=[(0, ord("x"), run_code(MAX))], data=b"\r\nz\n"))
write("lines", "64k-utf8-one-read", lines(runs=[(0, ord("a"), run_code(MAX - 1))], data="éz\n".encode()))
write("lines", "two-long-lines", lines(cuts=bytes([read_code(1025), 7]),
                                       runs=[(0, ord("y"), run_code(2 * MAX + 3)), (1, ord("w"), run_code(MAX + 5))],
                                       data=b"\n\n"))

# Regression seeds for "utf8-cut" (docs/reliability.md, fixed in 2fc4892): a read that ended
# inside the character at the 64 KiB cut split it. The first as the fuzzer found and minimized
# it, the second by hand.
write("lines", "utf8-cut-across-reads", bytes([4, 1, 1, 0, 0, 1, 226, 130, 172, 101, 0, 1, 226, 130, 172]))
write("lines", "utf8-cut-emoji", lines(cuts=bytes([read_code(MAX + 1)]),
                                       runs=[(0, ord("a"), run_code(MAX - 2))],
                                       data="\U0001F600z\n".encode()))

# ---- json_scan: one line, any bytes
J = {
    "empty": b"{}",
    "spaces": b" \t{ }\r\n ",
    "simple": b'{"a":1,"b":"two","c":[1,2.5,-0.1e+3,true,false,null],"d":{"e":{}}}',
    "collision": b'{"service":"x","a":1,"stage":2, "logged" : [3] ,"z":null}',
    "escaped-key": b'{"serv\\u0069ce":1,"st\\u0061ge":2,"logged\\u0000":3}',
    "duplicates": b'{"a":1,"a":2}',
    "escapes": b'{"s":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"}',
    "lone-surrogate": b'{"s":"\\ud800"}',
    "invalid-utf8": b'{"s":"\xff"}',
    "utf8": '{"\u00e9":"\u65e5\u672c\u2028"}'.encode(),
    "two-objects": b'{"a":1} {"b":2}',
    "trailing-comma": b'{"a":1,}',
    "array": b"[1]",
    "text": b"hello world",
    "numbers": b'{"a":-0,"b":0.5e-7,"c":1E+2,"d":123456789012345678901234567890}',
    "depth-127": b'{"a":' + b"[" * 126 + b"]" * 126 + b"}",
    "depth-128": b'{"a":' + b"[" * 127 + b"]" * 127 + b"}",
    "control-char": b'{"a":"\t"}',
    # Regression seeds for "big-number" (fixed in 2fc4892): serde_json refuses numbers beyond f64.
    "big-number": b'{"a":1e400}',
    "big-integer": b'{"a":1' + b"0" * 400 + b"}",
    "near-limit": b'{"a":[1.7976931348623157e308,1.7976931348623158e308]}',
    "below-limit": b'{"a":9.999999999999999e307}',
}
for k, v in J.items():
    write("json_scan", k, v)


# ---- record: [name_len][name][stage_sel][stage][ms: 8 LE][line]
def record(name, line, sel=0, stage=b"", ms=1764000000676):
    out = bytes([len(name)]) + name + bytes([sel])
    if sel >= 5:
        assert len(stage) == (sel - 5) % 32
        out += stage
    return out + struct.pack("<q", ms) + line


write("record", "empty-object", record(b"web", b"{}"))
write("record", "object-spacing", record(b"web", b'  { "a" : 1 ,"b":[ 2 ] }  \r', sel=2))
write("record", "collision", record(b"db", b'{"service":"x","a":1,"stage":"s","logged":0,"y":2}'))
write("record", "only-reserved", record(b"db", b'{"service":1,"stage":2,"logged":3}', sel=3))
write("record", "escaped-collision", record(b"db", b'{ "serv\\u0069ce" : 1 , "b":{"stage":2} }'))
write("record", "text", record(b"web", b"GET / 200", sel=1))
write("record", "binary", record(b"bad\xff<&>", b"\xff\x00\xe2\x82 \x1b[31m", sel=4))
write("record", "array", record(b"web", b"[1,2]"))
write("record", "custom-stage", record(b"w\"e\\b", b"{\"a\":\"\\u2028\"}", sel=5 + 5, stage=b"12345"))
write("record", "epoch", record(b"x", b"x", ms=0))
write("record", "negative-ms", record(b"x", b"x", ms=-1))
write("record", "big-number", record(b"web", b'{"a":1e400}'))  # regression: "big-number"
write("record", "near-limit", record(b"web", b'{"a":1.5e308,"b":-1e308}'))

# ---- config: 0-separated values: DIR LOG_LEVEL JSON_STDOUT KILL STOP POLICY CHECK CONTROL cwd
C = {
    "all-valid": [b"svc", b"INFO", b"off", b"0x1F", b"2.5", b"adopt", b"1_000", b"@dinit", b"/cwd"],
    "other-forms": [b"/abs", b"warning", b"YES", b"010", b"-5", b"ignore", b".25", b"none", b"/"],
    "empty-values": [b"", b"", b"", b"", b"", b"", b"", b"", b""],
    "bad-level": [b"", b"verbose"],
    "bad-kill": [b"", b"", b"", b"1e3"],
    "bad-policy": [b"", b"", b"", b"", b"", b"Adopt"],
    "overflow": [b"", b"", b"", b"9223372036", b"9223372037", b"", b"9223372036.9999999999"],
    "underscores": [b"0x_1f", b"0_7", b"1__0", b"_1", b"1_", b"0b_", b"0o", b"08", b"+"],
    "bases": [b"0B101", b"0O17", b"0XfF", b"00x1", b"0x", b"-0", b"+.5", b".", b"5."],
    "non-ascii": ["\u00e9".encode(), b"\xff", "\u0661".encode(), b"\xef\xbc\x91"],
}
for k, v in C.items():
    write("config", k, b"\0".join(v))

# ---- protocol: one request line
P = {
    "status": b'{"cmd":"status"}',
    "status-some": b'{"cmd":"status","services":["web","db"]}',
    "check": b'{"cmd":"check","services":["web"]}',
    "down": b'{"cmd":"down","services":["a","b"]}',
    "up-none": b'{"cmd":"up"}',
    "restart-null": b'{"cmd":"restart","services":null}',
    "signal-name": b'{"cmd":"signal","signal":"hup","services":["a"]}',
    "signal-sig": b'{"cmd":"signal","signal":"SIGUSR1","services":["a"]}',
    "signal-number": b'{"cmd":"signal","signal":15,"services":["a"]}',
    "signal-string-number": b'{"cmd":"signal","signal":"+9","services":["a"]}',
    "signal-big": b'{"cmd":"signal","signal":4294967311,"services":["a"]}',
    "signal-float": b'{"cmd":"signal","signal":1.0,"services":["a"]}',
    "shutdown": b'{"cmd":"shutdown"}',
    "garbage": b"garbage",
    "array": b"[1]",
    "bad-services": b'{"cmd":"down","services":[1]}',
}
for k, v in P.items():
    write("protocol", k, v)

# ---- control_conn: [limits] [n_steps] [steps: op arg] [data]
# limits: bits 0-1 the longest request (8, 16, 64, 64 KiB), bits 2-3 the read size (1, 3, 16,
# 4096). Steps (op % 8): 0 read arg+1 bytes, 1 take and answer (arg*7+1 bytes), 2 write arg
# bytes, 3 end of input, 4 socket failure, 5 the clock moves arg*20 ms, 6-7 read everything.
READ, SERVE, WRITE, EOF, FAIL, TICK, READ_ALL = 0, 1, 2, 3, 4, 5, 6
ST = b'{"cmd":"status"}'


def conn(max_sel, read_sel, steps=(), data=b""):
    out = bytes([max_sel | (read_sel << 2), len(steps)])
    for op, arg in steps:
        out += bytes([op, arg])
    return out + data


K = {
    # 3,800 requests in one write, cut short: many complete lines in one read.
    "many-in-one-read": conn(3, 3, [(READ_ALL, 0), (SERVE, 0), (WRITE, 1), (SERVE, 0)],
                             (ST + b"\n") * 200),
    "pipelined-blank-lines": conn(3, 3, [], ST + b"\n\n  \r\n" + b'{"cmd":"fly"}\r\n' + ST + b"\n"),
    "byte-by-byte": conn(3, 0, [(READ, 0)] * 20 + [(SERVE, 3), (WRITE, 5), (READ, 0)] * 4,
                         ST + b"\n" + ST + b"\n"),
    "too-long-with-newline": conn(0, 3, [], ST + b"\n"),
    "too-long-no-newline": conn(1, 2, [(READ, 40), (SERVE, 0)], b"x" * 40),
    "exactly-the-limit": conn(0, 1, [], b"  null  \n" + b"12345678\n"),
    "eof-mid-line": conn(3, 3, [(READ, 5), (EOF, 0), (SERVE, 0)], ST),
    "eof-after-lines": conn(3, 2, [(READ_ALL, 0), (EOF, 0)], ST + b"\n" + ST + b"\n  "),
    "fail-mid-response": conn(3, 3, [(READ_ALL, 0), (SERVE, 200), (WRITE, 3), (FAIL, 0)],
                              (ST + b"\n") * 5),
    "slowloris": conn(3, 0, [(READ, 0), (TICK, 100), (READ, 0), (TICK, 100), (READ, 0), (TICK, 60)],
                      b"   {"),
    "unread-response": conn(3, 3, [(READ_ALL, 0), (SERVE, 255), (WRITE, 10), (TICK, 200), (TICK, 60)],
                            ST + b"\n" + ST + b"\n"),
    "idle": conn(3, 3, [(TICK, 249), (TICK, 1), (TICK, 1)], b""),
}
for k, v in K.items():
    write("control_conn", k, v)

# ---- dictionaries (libFuzzer -dict=)
DICTS = {
    "json": [b"{", b"}", b"[", b"]", b":", b",", b'"', b"\\", b"true", b"false", b"null",
             b"-0.5e+10", b"1e400", b"\\u0000", b"\\ud83d\\ude00", b"\\ud800", b"\\u2028",
             b'"service"', b'"stage"', b'"logged"', b'"serv\\u0069ce"', b'"msg"', b"\xc3\xa9",
             b"\xe2\x80\xa8", b"\xf0\x9f\x98\x80", b"\xff", b" \t\r\n"],
    "protocol": [b'{"cmd":', b'"status"', b'"check"', b'"up"', b'"down"', b'"restart"',
                 b'"signal"', b'"shutdown"', b'"services":', b'"signal":', b'["a"]', b"null",
                 b'"HUP"', b'"SIGKILL"', b'"rtmin"', b"65", b"-1", b"2147483648", b"1.5",
                 b"{", b"}", b"[", b"]", b",", b"\\u0000"],
    "control_conn": [b'{"cmd":', b'"status"', b'"shutdown"', b'"services":', b'["a"]', b"}",
                     b"\n", b"\r\n", b" ", b'{"cmd":"status"}\n', b"\x00\x06", b"\x01\x00",
                     b"\x02\xff", b"\x03\x00", b"\x04\x00", b"\x05\xfa"],
    "lines": [b"\n", b"\r\n", b"\r", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80",
              b"\xe2\x82", b"\xf0\x9f\x98", b"\xff", b"\x00\x00\x01", b"\xc0\xcf\xdf",
              b"\x01\xcf", b"\x01\xd0"],
    "config": [b"0x", b"0o", b"0b", b"0X", b"_", b".", b"-", b"+", b"9223372036",
               b"9223372037", b"none", b"error", b"warn", b"warning", b"info", b"debug",
               b"terminate", b"adopt", b"ignore", b"true", b"false", b"yes", b"no", b"on",
               b"off", b"@", b"\x00"],
}


def dict_line(i, v):
    esc = "".join(chr(c) if 0x20 <= c < 0x7F and c not in b'"\\' else "\\x%02X" % c for c in v)
    return 'k%d="%s"\n' % (i, esc)


os.makedirs(os.path.join(HERE, "dicts"), exist_ok=True)
for name, words in DICTS.items():
    with open(os.path.join(HERE, "dicts", name + ".dict"), "w") as f:
        f.write("# written by fuzz/make_seeds.py\n")
        for i, w in enumerate(words):
            f.write(dict_line(i, w))
