#!/usr/bin/env python3
"""Draw the markdown tables the benchmarks print as SVG bar charts.

  bench/chart.py TABLE_TEXT OUT.svg [TITLE]
      the first markdown table found in TABLE_TEXT (a bench script's output,
      "-" for stdin) becomes OUT.svg
  bench/chart.py --results bench/RESULTS.md OUTDIR
      every table of RESULTS.md becomes OUTDIR/<section>-<n>.svg, titled by
      the section heading (what the README shows)

A table's first column names the measurement; every other column whose
cells are numbers is a tool (a trailing "x" marks a ratio column, which is
printed beside the bars instead of drawn). Each row's bars are scaled to
the row's largest value, so rows with different units sit in one chart;
the value is written at the end of each bar. Plain SVG, no libraries.
"""
import html
import re
import sys

COLOURS = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700', '#8250df', '#57606a']
# a number, a ratio ("2.5x") or a number with its unit ("431.1 MiB/s")
NUM = re.compile(r'^\s*([-+]?[0-9]*\.?[0-9]+)\s*(x?)(\s+[A-Za-z/%]+)?\s*(\(|$|,)')


def tables(text):
    """(heading, rows) for each markdown table, rows as lists of cells."""
    heading, out, cur = '', [], None
    for line in text.splitlines():
        if line.startswith('#'):
            heading = line.lstrip('#').strip()
        if line.lstrip().startswith('|'):
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if cur is None:
                cur = (heading, [])
                out.append(cur)
            if not all(re.fullmatch(r':?-+:?', c) for c in cells if c):
                cur[1].append(cells)
        else:
            cur = None
    return [t for t in out if len(t[1]) >= 2]


def number(cell):
    m = NUM.match(cell.replace(',', ''))
    return (float(m.group(1)), m.group(2) == 'x') if m else None


def svg(heading, rows):
    head, body = rows[0], rows[1:]
    tools, ratios = [], []
    for j in range(1, len(head)):
        vals = [number(r[j]) for r in body if j < len(r)]
        nums = [v for v in vals if v is not None]
        if not nums:
            continue
        (ratios if all(v[1] for v in nums) else tools).append(j)
    if not tools:
        return None
    left, width, bar, gap = 270, 900, 14, 12
    plot = width - left - 160
    body = [r for r in body if any(j < len(r) and number(r[j]) for j in tools)]
    row_h = bar * len(tools) + gap
    height = 60 + row_h * len(body) + 20
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-size="14" font-weight="bold">%s</text>'
           % html.escape(heading or 'benchmark')]
    x = left
    for k, j in enumerate(tools):
        out.append('<rect x="%d" y="32" width="12" height="12" fill="%s"/>'
                   % (x, COLOURS[k % len(COLOURS)]))
        out.append('<text x="%d" y="42">%s</text>' % (x + 16, html.escape(head[j])))
        x += 30 + 7 * len(head[j])
    y = 60
    for r in body:
        vals = [number(r[j])[0] if j < len(r) and number(r[j]) else 0 for j in tools]
        top = max(vals) or 1
        out.append('<text x="10" y="%d">%s</text>'
                   % (y + row_h / 2, html.escape(r[0][:40])))
        for k, v in enumerate(vals):
            w = max(1, plot * v / top)
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>'
                       % (left, y + k * bar, w, bar - 2, COLOURS[k % len(COLOURS)]))
            out.append('<text x="%.1f" y="%d" font-size="10">%s</text>'
                       % (left + w + 4, y + k * bar + bar - 4, html.escape(r[tools[k]])))
        notes = [r[j] for j in ratios if j < len(r) and r[j]]
        if notes:
            out.append('<text x="%d" y="%d" font-weight="bold">%s</text>'
                       % (width - 70, y + row_h / 2, html.escape(' '.join(notes))))
        y += row_h
    out.append('</svg>')
    return '\n'.join(out) + '\n'


def slug(s):
    return re.sub(r'[^a-z0-9]+', '-', s.lower()).strip('-')[:40] or 'table'


def main(argv):
    if len(argv) == 4 and argv[1] == '--results':
        import os
        os.makedirs(argv[3], exist_ok=True)
        seen = {}
        for heading, rows in tables(open(argv[2]).read()):
            s = svg(heading, rows)
            if not s:
                continue
            base = slug(heading)
            seen[base] = seen.get(base, 0) + 1
            path = os.path.join(argv[3], '%s-%d.svg' % (base, seen[base]))
            open(path, 'w').write(s)
            print(path)
        return 0
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    text = sys.stdin.read() if argv[1] == '-' else open(argv[1]).read()
    found = tables(text)
    if not found:
        sys.stderr.write('chart.py: no markdown table in %s\n' % argv[1])
        return 1
    s = svg(argv[3] if len(argv) == 4 else found[0][0], found[0][1])
    if not s:
        sys.stderr.write('chart.py: the table has no numeric columns\n')
        return 1
    open(argv[2], 'w').write(s)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
