#!/usr/bin/env python3
"""Writes core/corpus/places.tsv: trace lines that name a place, labelled by hand.

Each place below is written the way carriers write it (a hub's prefix, an outlet's name,
an English facility name), with the province and city a person reads from it; the lines
put those places into phrasings in the style of each carrier's public traces, in our
own words. The split column is fixed by a hash of the line (md5, 1 in 4 held back), so
it was chosen before any rule was tuned and never moves.

Columns: split, province, city, next_city (or -), line.
Usage: bench/place/make_corpus.py
"""
import hashlib, os, random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "core", "corpus",
                   "places.tsv")

# (how the line names it, province, city)
ZH = [
    ("深圳宝安", "广东省", "深圳市"), ("深圳南山", "广东省", "深圳市"), ("深圳龙华", "广东省", "深圳市"),
    ("广州白云", "广东省", "广州市"), ("广州番禺", "广东省", "广州市"), ("东莞虎门", "广东省", "东莞市"),
    ("东莞", "广东省", "东莞市"), ("佛山顺德", "广东省", "佛山市"), ("中山", "广东省", "中山市"),
    ("惠州", "广东省", "惠州市"), ("揭阳", "广东省", "揭阳市"), ("汕头潮阳", "广东省", "汕头市"),
    ("珠海香洲", "广东省", "珠海市"), ("杭州萧山", "浙江省", "杭州市"), ("杭州", "浙江省", "杭州市"),
    ("义乌", "浙江省", "金华市"), ("金华", "浙江省", "金华市"), ("浙江义乌", "浙江省", "金华市"),
    ("宁波北仑", "浙江省", "宁波市"), ("温州瓯海", "浙江省", "温州市"), ("嘉兴", "浙江省", "嘉兴市"),
    ("绍兴柯桥", "浙江省", "绍兴市"), ("台州", "浙江省", "台州市"), ("上海浦东", "上海市", "上海市"),
    ("上海青浦", "上海市", "上海市"), ("上海", "上海市", "上海市"), ("北京顺义", "北京市", "北京市"),
    ("北京朝阳", "北京市", "北京市"), ("北京", "北京市", "北京市"), ("天津", "天津市", "天津市"),
    ("天津武清", "天津市", "天津市"), ("重庆", "重庆市", "重庆市"), ("重庆渝北", "重庆市", "重庆市"),
    ("成都双流", "四川省", "成都市"), ("成都", "四川省", "成都市"), ("绵阳", "四川省", "绵阳市"),
    ("武汉", "湖北省", "武汉市"), ("武汉东西湖", "湖北省", "武汉市"), ("仙桃", "湖北省", "仙桃市"),
    ("恩施", "湖北省", "恩施土家族苗族自治州"), ("郑州", "河南省", "郑州市"), ("洛阳", "河南省", "洛阳市"),
    ("西安", "陕西省", "西安市"), ("沈阳", "辽宁省", "沈阳市"), ("大连", "辽宁省", "大连市"),
    ("长沙", "湖南省", "长沙市"), ("株洲", "湖南省", "株洲市"), ("南京", "江苏省", "南京市"),
    ("南京江宁", "江苏省", "南京市"), ("苏州昆山", "江苏省", "苏州市"), ("昆山", "江苏省", "苏州市"),
    ("无锡", "江苏省", "无锡市"), ("常州武进", "江苏省", "常州市"), ("徐州", "江苏省", "徐州市"),
    ("南通", "江苏省", "南通市"), ("厦门", "福建省", "厦门市"), ("泉州晋江", "福建省", "泉州市"),
    ("福州", "福建省", "福州市"), ("莆田", "福建省", "莆田市"), ("济南", "山东省", "济南市"),
    ("青岛", "山东省", "青岛市"), ("临沂", "山东省", "临沂市"), ("烟台", "山东省", "烟台市"),
    ("合肥", "安徽省", "合肥市"), ("芜湖", "安徽省", "芜湖市"), ("南昌", "江西省", "南昌市"),
    ("赣州", "江西省", "赣州市"), ("昆明", "云南省", "昆明市"), ("大理", "云南省", "大理白族自治州"),
    ("贵阳", "贵州省", "贵阳市"), ("南宁", "广西壮族自治区", "南宁市"), ("桂林", "广西壮族自治区", "桂林市"),
    ("乌鲁木齐", "新疆维吾尔自治区", "乌鲁木齐市"), ("呼和浩特", "内蒙古自治区", "呼和浩特市"),
    ("哈尔滨", "黑龙江省", "哈尔滨市"), ("长春", "吉林省", "长春市"), ("延吉", "吉林省", "延边朝鲜族自治州"),
    ("石家庄", "河北省", "石家庄市"), ("保定", "河北省", "保定市"), ("廊坊", "河北省", "廊坊市"),
    ("太原", "山西省", "太原市"), ("兰州", "甘肃省", "兰州市"), ("海口", "海南省", "海口市"),
    ("三亚", "海南省", "三亚市"), ("拉萨", "西藏自治区", "拉萨市"), ("银川", "宁夏回族自治区", "银川市"),
    ("西宁", "青海省", "西宁市"), ("广东省深圳市南山区", "广东省", "深圳市"),
    ("浙江省金华市义乌市", "浙江省", "金华市"), ("江苏省苏州市吴中区", "江苏省", "苏州市"),
    ("湖北省武汉市洪山区", "湖北省", "武汉市"), ("四川省成都市武侯区", "四川省", "成都市"),
]

# (how an English line names it, province, city)
EN = [
    ("SHENZHEN", "广东省", "深圳市"), ("GUANGZHOU", "广东省", "广州市"), ("GUANGZHOU CITY", "广东省", "广州市"),
    ("DONGGUAN", "广东省", "东莞市"), ("SHANGHAI", "上海市", "上海市"), ("BEIJING", "北京市", "北京市"),
    ("HANGZHOU", "浙江省", "杭州市"), ("HANGZHOU, ZHEJIANG", "浙江省", "杭州市"), ("YIWU", "浙江省", "金华市"),
    ("NINGBO", "浙江省", "宁波市"), ("CHENGDU", "四川省", "成都市"), ("XIAMEN", "福建省", "厦门市"),
    ("WUHAN", "湖北省", "武汉市"), ("NANJING", "江苏省", "南京市"), ("ZHENGZHOU", "河南省", "郑州市"),
    ("TIANJIN", "天津市", "天津市"), ("QINGDAO", "山东省", "青岛市"), ("CHONGQING", "重庆市", "重庆市"),
    ("Shenzhen", "广东省", "深圳市"), ("Xi'an", "陕西省", "西安市"), ("KUNMING", "云南省", "昆明市"),
    ("FOSHAN, GUANGDONG", "广东省", "佛山市"), ("Harbin", "黑龙江省", "哈尔滨市"), ("SHENYANG", "辽宁省", "沈阳市"),
    ("CHANGSHA", "湖南省", "长沙市"), ("HEFEI", "安徽省", "合肥市"), ("JINAN", "山东省", "济南市"),
    ("ZHUHAI", "广东省", "珠海市"), ("KUNSHAN", "江苏省", "苏州市"), ("DALIAN", "辽宁省", "大连市"),
]

ZH_LINES = [
    # ZTO style
    "【{p}中转部】已发出，下一站【{n}中转部】",
    "快件已到达【{p}中转部】",
    "【{p}公司】的业务员已揽收，已发往下一站",
    "【{p}营业部】的派件员正在为您派件，请保持电话畅通",
    "【{p}】快件离开【{p}中转】已发往【{n}】",
    # YTO style
    "您的快件已到达【{p}转运中心】",
    "您的快件离开【{p}转运中心】，准备发往【{n}转运中心】",
    "【{p}公司】 已收件 取件人: 刘某",
    "快件已被【{p}公司】揽收",
    # SF style
    "快件到达 【{p}集散中心】",
    "快件在【{p}集散中心】完成分拣,准备发往 【{n}集散中心】",
    "顺丰速运 已收取快件 【{p}营业点】",
    "快件已发车，离开【{p}中转场】",
    "【{p}】派件中，快递员正在路上",
    # STO style
    "【{p}分拨中心】-已装袋发往-【{n}分拨中心】",
    "【{p}分拨中心】-已收入",
    "{p}公司-已发往-{n}分拨中心",
    # Yunda style
    "[{p}分拨交付中心]进行装车扫描，即将发往：{n}分拨交付中心",
    "[{p}公司]进行揽件扫描",
    "[{p}分拨交付中心]到达扫描",
    # JD style
    "您的快件已到达【{p}分拣中心】",
    "您的快件在【{p}分拣中心】分拣完成",
    "您的快件由【{p}营业部】发出，正在发往【{n}分拣中心】",
    "配送员已从【{p}站】出发，请您准备签收",
    # EMS / China Post style
    "【{p}邮区中心局】已出口开拆",
    "离开【{p}】，下一站【{n}】",
    "【{p}揽投部】已收寄",
    "到达【{p}处理中心】（经转）",
    # J&T style
    "【{p}转运中心】已发出，下一站【{n}网点】",
    "快件到达【{p}网点】，准备派送",
    # Deppon style
    "运输中，离开【{p}枢纽中心】，发往【{n}】",
    "快件已到达【{p}营业部】，正在安排派送",
    # Stations and lockers
    "您的快件已存放至【{p}菜鸟驿站】，请及时领取",
    "快件已投递至{p}丰巢智能柜，取件码已发送",
    "【{p}】兔喜生活超市代收，凭取件码领取",
]

EN_LINES = [
    "Departed Facility in {p} - CHINA MAINLAND",
    "Arrived at Sort Facility {p} - CHINA MAINLAND",
    "Processed at {p}, CN",
    "Shipment picked up {p} - CHINA",
    "Departed from facility: {p}, CHINA",
    "Clearance processing complete at {p} - CHINA MAINLAND",
    "Origin Scan {p} CN",
    "Arrival Scan {p} CN",
    "Processed through facility {p} CHINA",
    "Your item arrived at the {p} international hub",
    "Departed {p}, in transit to {n}",
    "Export scan {p} (CN)",
    "Transferred through {p}, CHINA",
    "Customs status updated {p} - CHINA",
]

def main():
    rnd = random.Random(20261202)
    rows = []
    seen = set()
    def add(line, prov, city, nxt):
        if line in seen:
            return
        seen.add(line)
        held = int(hashlib.md5(line.encode()).hexdigest(), 16) % 4 == 0
        rows.append(("held" if held else "tune", prov, city, nxt, line))
    for tpl in ZH_LINES:
        for _ in range(10):
            p = rnd.choice(ZH)
            n = rnd.choice([z for z in ZH if z[2] != p[2]])
            nxt = n[2] if "{n}" in tpl else "-"
            add(tpl.format(p=p[0], n=n[0]), p[1], p[2], nxt)
    for tpl in EN_LINES:
        for _ in range(9):
            p = rnd.choice(EN)
            n = rnd.choice([e for e in EN if e[2] != p[2]])
            nxt = n[2] if "{n}" in tpl else "-"
            add(tpl.format(p=p[0], n=n[0]), p[1], p[2], nxt)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("# split\tprovince\tcity\tnext_city\tline  (bench/place/make_corpus.py)\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    held = sum(r[0] == "held" for r in rows)
    print(f"{len(rows)} lines, {held} held back")

if __name__ == "__main__":
    main()
