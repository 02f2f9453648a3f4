# Summarises logs/*.log (one per run of run.sh) as the table of cluster-client-comparison.md.
# A run is wedged when its last 5 seconds had no successful call; "to last failure" is the
# seconds from the fault's start to the last second with a failed call.
import collections, glob, os, re, statistics

AT = 8  # run.sh's default: the fault starts 8 s into the run
fault_s = {}
if os.path.exists('results.tsv'):
    for line in open('results.tsv'):
        f = line.split('\t')
        m = re.search(r'fault_s=([\d.]+)', line)
        if m and len(f) > 3:
            fault_s[(f[0], f[1], f[2])] = float(m.group(1))
rows = collections.defaultdict(list)
for path in sorted(glob.glob('logs/*.log')):
    client, fault, run = os.path.basename(path)[:-4].rsplit('-', 2)
    lines = open(path).read().splitlines()
    data = [tuple(map(int, re.findall(r'=\s*(\d+)', l))) for l in lines if l.startswith('t=')]
    if len(data) < 10:
        continue
    stats = [l for l in lines if l.startswith('stats')]
    replaced = re.search(r'replacements: (\d+)', stats[0]).group(1) if stats else ''
    before = statistics.median([o for t, o, e in data if 3 <= t <= AT])
    failed = sum(e for t, o, e in data if t > AT)
    wedged = all(o == 0 for t, o, e in data[-5:])
    failing = [t for t, o, e in data if t > AT and e > 0]
    rows[(client, fault)].append(dict(
        wedged=wedged, failed=failed, to_last=(max(failing) - AT) if failing else 0,
        before=before, after=statistics.median([o for t, o, e in data[-5:]]),
        fault=fault_s.get((client, fault, run)), replaced=replaced))
print('| client | fault | wedged | failed calls, per run | s from fault to last failure | fault lasted (s) | ok/s before → last 5 s (k) |')
print('|---|---|---|---|---|---|---|')
for client in ['r18', 'r20', 'fredc', 'fredu', 'storefix', 'store18', 'store']:
    for fault in ['reshard', 'rebalance', 'failover', 'clientkill']:
        r = rows.get((client, fault))
        if not r:
            continue
        join = lambda f: ', '.join(f(x) for x in r)
        last = join(lambda x: 'never' if x['wedged'] else str(x['to_last']))
        if any(x['replaced'] for x in r):
            last += ' (replaced: ' + join(lambda x: x['replaced'] or '?') + ')'
        print(f"| {client} | {fault} | {sum(x['wedged'] for x in r)} of {len(r)} | {join(lambda x: str(x['failed']))} | {last} "
              f"| {join(lambda x: '%.0f' % x['fault'] if x['fault'] is not None else '?')} "
              f"| {join(lambda x: '%.0f→%.0f' % (x['before'] / 1000, x['after'] / 1000))} |")
