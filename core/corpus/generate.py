#!/usr/bin/env python3
"""Writes core/corpus/lines.tsv: labelled trace lines for the state classifier.

Python 3 standard library only; deterministic (fixed seed). Run from anywhere:

    python3 core/corpus/generate.py

Columns: split, label, lang, carrier, text. `split` is `heldout` when the FNV-1a 64-bit hash
of the UTF-8 text is 0..29 modulo 100 (30 %), else `train`; it depends on the text alone,
so it was fixed before any rule or weight was tuned, and core/tests/state_corpus.rs checks
that every row still carries the split its text hashes to.
"""

import os
import random

import fills as F
from templates import EN, ZH

CN_EXPRESS = ["sf", "zto", "yto", "sto", "yunda", "jd", "ems", "jtexpress", "deppon", "best"]
STATIONS = ["cainiao", "fengchao", "tuxi"]
INTERNATIONAL = ["ups", "fedex", "dhl", "usps", "upu"]
INSTANCES = 5


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def split_of(text):
    return "heldout" if fnv1a64(text) % 100 < 30 else "train"


def phone(r):
    kind = r.random()
    if kind < 0.5:
        return "1" + r.choice("3456789") + "".join(r.choice("0123456789") for _ in range(9))
    if kind < 0.75:
        return "1" + r.choice("3578") + r.choice("0123456789") + "****" + "".join(r.choice("0123456789") for _ in range(4))
    return "0" + r.choice(["755", "20", "10", "21", "571", "28", "27"]) + "-" + "".join(r.choice("0123456789") for _ in range(8))


def name(r):
    n = r.choice(F.SURNAMES) + r.choice(F.GIVEN)
    if r.random() < 0.2:
        n = n[0] + "*" * (len(n) - 1)
    return n


def fill(r, carrier, text):
    prov, c, districts = r.choice(F.CITIES)
    prov2, c2, _ = r.choice([x for x in F.CITIES if x[1] != c])
    d = r.choice(districts)
    street = r.choice(F.STREETS)
    brand = F.BRANDS.get(carrier, "")
    values = {
        "prov": prov, "c": c, "cs": c + "市", "d": d, "street": street,
        "prov2": prov2, "c2": c2, "cs2": c2 + "市",
        "hub": r.choice([c + r.choice(F.HUB_KINDS), c + d.rstrip("区县市镇") + r.choice(F.HUB_KINDS),
                         c + street + r.choice(F.HUB_KINDS)]),
        "hub2": c2 + r.choice(F.HUB_KINDS),
        "outlet": r.choice([c + d + street + r.choice(F.OUTLET_KINDS), c + street + r.choice(F.OUTLET_KINDS),
                            d + street + r.choice(F.OUTLET_KINDS)]),
        "station": r.choice(F.ESTATES) + r.choice(F.STATIONS),
        "locker": r.choice(F.ESTATES) + r.choice(["", str(r.randint(1, 30)) + "栋", "东门", "北门"]) + r.choice(F.LOCKERS),
        "estate": r.choice(F.ESTATES),
        "name": name(r), "phone": phone(r),
        "hot": F.HOTLINES.get(carrier, "95338"), "brand": brand or "本公司",
        "code": r.choice([str(r.randint(100000, 99999999)), f"{r.randint(1, 9)}-{r.randint(1, 9)}-{r.randint(1000, 9999)}",
                          f"{r.randint(10, 99)}-{r.randint(1000, 9999)}"]),
        "time": r.choice(["18:00", "今天20:00", "明天12:00", "今日17:30", "上午11点", "下午3点", "19:30"]),
        "date": r.choice(["05/12", "2026-06-01", "Monday", "tomorrow", "11月3日", "06/18/2026"]),
        "n": str(r.randint(1, 88)),
        "wb": r.choice(["SF", "9", "YT", "JT", "1"]) + str(r.randint(10**9, 10**12)),
        "flight": r.choice(["CZ", "CA", "MU", "O3", "YG"]) + str(r.randint(1000, 9999)),
        "plate": r.choice(["粤B", "京A", "沪C", "浙A", "川A"]) + str(r.randint(10000, 99999)),
        "proxy": r.choice(F.PROXIES),
        "ec": r.choice(F.EN_CITIES), "ec2": r.choice(F.EN_CITIES),
        "fac": r.choice(F.EN_FACILITIES), "ename": r.choice(F.EN_NAMES),
        "eplace": r.choice(F.EN_PLACES), "eproxy": r.choice(F.EN_PROXIES),
        "country": r.choice(F.COUNTRIES),
        "etime": f"{r.randint(1, 12)}:{r.randint(0, 59):02d} {r.choice(['am', 'pm'])}",
    }
    return text.format(**values), values


def decorate_zh(r, carrier, text, v):
    """Adds the carrier's habitual frame around a line: a bracketed place, a hotline."""
    roll = r.random()
    if text.startswith("【") or roll < 0.45:
        pass
    elif carrier in ("zto", "sto", "best", "sf") and roll < 0.8:
        text = f"【{v['cs']}】" + text
    elif carrier == "yto" and roll < 0.8:
        text = f"【{v['prov']}{v['cs']}{v['d']}公司】 " + text
    elif carrier == "jtexpress" and roll < 0.8:
        text = f"[{v['cs']}]" + text
    elif carrier == "ems" and roll < 0.8:
        text = f"【{v['c']}{v['d']}揽投部】" + text
    elif carrier == "yunda" and roll < 0.8:
        text = f"【{v['c']}{v['d']}公司】" + text
    tail = r.random()
    if tail < 0.08:
        text += f"，客服电话{F.HOTLINES.get(carrier, '95338')}"
    elif tail < 0.12:
        text += "。"
    return text


def decorate_en(r, carrier, text, v):
    roll = r.random()
    if roll < 0.35:
        pass
    elif roll < 0.55:
        text = f"{text}, {v['ec']}"
    elif roll < 0.7:
        text = f"{v['ec']} {text}"
    elif roll < 0.85:
        text = text.upper()
    else:
        text = f"{text} - {v['ec']}"
    return text


def carriers_of(spec, lang):
    out = []
    for part in spec.split("|"):
        if part == "*":
            out += CN_EXPRESS
        elif part == "stn":
            out += STATIONS
        elif part == "en":
            out += INTERNATIONAL
        else:
            out.append(part)
    return out


def main():
    r = random.Random(20261202)
    seen = set()
    rows = []
    for lang, table in (("zh", ZH), ("en", EN)):
        for label, templates in table.items():
            for spec, template in templates:
                carriers = carriers_of(spec, lang)
                for _ in range(INSTANCES):
                    carrier = r.choice(carriers)
                    text, values = fill(r, carrier, template)
                    deco = decorate_zh if lang == "zh" else decorate_en
                    text = deco(r, carrier, text, values)
                    if text in seen:
                        continue
                    seen.add(text)
                    rows.append((split_of(text), label, lang, carrier, text))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lines.tsv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Labelled trace lines for the state classifier; generated by generate.py, do not edit by hand.\n")
        f.write("# split\tlabel (core::state::State)\tlang\tcarrier style\ttext\n")
        for row in rows:
            assert "\t" not in row[4] and "\n" not in row[4]
            f.write("\t".join(row) + "\n")
    held = sum(1 for row in rows if row[0] == "heldout")
    print(f"{len(rows)} lines, {held} held out ({100 * held / len(rows):.1f} %)")


if __name__ == "__main__":
    main()
