"""Fill-ins for the corpus templates: places, people, phones, codes and times.

Everything here is invented for this project: town and district names are real places (as
any address is), outlet and station names are made up.
"""

CITIES = [
    ("广东省", "深圳", ["南山区", "宝安区", "福田区", "龙岗区", "龙华区"]),
    ("广东省", "广州", ["天河区", "白云区", "番禺区", "海珠区"]),
    ("广东省", "东莞", ["长安镇", "虎门镇", "松山湖"]),
    ("广东省", "佛山", ["南海区", "顺德区", "禅城区"]),
    ("北京市", "北京", ["朝阳区", "海淀区", "丰台区", "顺义区", "通州区"]),
    ("上海市", "上海", ["浦东新区", "闵行区", "嘉定区", "松江区", "青浦区"]),
    ("浙江省", "杭州", ["西湖区", "余杭区", "萧山区", "滨江区"]),
    ("浙江省", "金华", ["义乌市", "婺城区", "东阳市"]),
    ("浙江省", "宁波", ["鄞州区", "北仑区", "慈溪市"]),
    ("浙江省", "温州", ["鹿城区", "瑞安市", "乐清市"]),
    ("江苏省", "南京", ["江宁区", "鼓楼区", "栖霞区"]),
    ("江苏省", "苏州", ["工业园区", "昆山市", "吴中区"]),
    ("江苏省", "无锡", ["滨湖区", "江阴市"]),
    ("四川省", "成都", ["武侯区", "双流区", "高新区", "郫都区"]),
    ("湖北省", "武汉", ["洪山区", "江夏区", "东西湖区"]),
    ("陕西省", "西安", ["雁塔区", "未央区", "长安区"]),
    ("河南省", "郑州", ["金水区", "中原区", "新郑市"]),
    ("湖南省", "长沙", ["岳麓区", "雨花区", "长沙县"]),
    ("重庆市", "重庆", ["渝北区", "九龙坡区", "沙坪坝区"]),
    ("天津市", "天津", ["西青区", "滨海新区", "武清区"]),
    ("山东省", "青岛", ["黄岛区", "城阳区", "市南区"]),
    ("山东省", "济南", ["历下区", "槐荫区"]),
    ("福建省", "厦门", ["思明区", "集美区", "湖里区"]),
    ("福建省", "福州", ["鼓楼区", "仓山区", "闽侯县"]),
    ("安徽省", "合肥", ["蜀山区", "包河区", "肥西县"]),
    ("云南省", "昆明", ["官渡区", "呈贡区", "五华区"]),
    ("辽宁省", "沈阳", ["浑南区", "铁西区", "于洪区"]),
    ("辽宁省", "大连", ["甘井子区", "金州区"]),
    ("黑龙江省", "哈尔滨", ["南岗区", "道里区"]),
    ("吉林省", "长春", ["朝阳区", "南关区"]),
    ("河北省", "石家庄", ["长安区", "裕华区"]),
    ("河北省", "廊坊", ["广阳区", "固安县"]),
    ("山西省", "太原", ["小店区", "迎泽区"]),
    ("广西壮族自治区", "南宁", ["青秀区", "西乡塘区"]),
    ("贵州省", "贵阳", ["观山湖区", "南明区"]),
    ("江西省", "南昌", ["红谷滩区", "青山湖区"]),
    ("甘肃省", "兰州", ["城关区", "七里河区"]),
    ("新疆维吾尔自治区", "乌鲁木齐", ["天山区", "新市区"]),
    ("海南省", "海口", ["龙华区", "美兰区"]),
    ("内蒙古自治区", "呼和浩特", ["赛罕区", "新城区"]),
]

STREETS = ["科技园", "望京", "西丽", "中关村", "张江", "五角场", "文三路", "星光大道", "高新",
           "城南", "江北", "人民路", "解放路", "建设路", "中山路", "金沙", "东湖", "滨河", "沙河",
           "龙华", "新城", "开发区", "大学城", "火车站", "东门", "西关", "北苑", "南湖", "花园路"]

HUB_KINDS = ["转运中心", "分拨中心", "集散中心", "中转场", "分拣中心", "处理中心", "转运场",
             "航空枢纽", "陆运枢纽", "中心", "集散场"]

OUTLET_KINDS = ["营业部", "营业点", "网点", "分部", "站点", "揽投部", "营业厅", "配送站",
                "服务部", "快递点", "公司", "营业所", "分公司"]

STATIONS = ["菜鸟驿站", "妈妈驿站", "兔喜生活超市", "兔喜快递超市", "中通快递超市", "邮政驿站",
            "京东自提点", "顺丰驿站", "熊猫快收", "韵达快递超市", "便民服务站", "快递代收点",
            "多多买菜自提点", "校园驿站", "社区服务站"]

LOCKERS = ["丰巢智能柜", "丰巢快递柜", "速递易快递柜", "中邮智递柜", "京东自提柜", "递易智能柜",
           "快递柜", "智能快件柜", "丰巢柜", "云柜"]

ESTATES = ["幸福里", "阳光花园", "碧水湾", "翠苑", "锦绣家园", "东方明珠小区", "金色海岸",
           "绿地世纪城", "万科城", "保利香槟", "华润城", "江南名居", "学府小区", "东湖花园",
           "和平里", "青年公寓", "龙湖天街", "嘉园", "时代广场", "湖畔居"]

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = ["伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超",
         "秀英", "晓东", "建华", "志强", "海燕", "丽娟", "俊杰", "文博", "子涵", "雨轩", "浩然",
         "欣怡", "宇航", "思远", "国庆", "春梅", "德华", "立新", "红霞", "小龙", "佳琪"]

PROXIES = ["门卫", "前台", "物业", "保安", "收发室", "传达室", "家人", "同事", "邻居", "公司前台",
           "家属", "室友", "朋友", "门岗", "快递收发室", "物业前台", "店员", "亲属"]

HOTLINES = {
    "sf": "95338", "zto": "95311", "yto": "95554", "sto": "95543", "yunda": "95546",
    "jd": "950616", "ems": "11183", "jtexpress": "956025", "deppon": "95353", "best": "95320",
    "cainiao": "95187", "fengchao": "4008-225-225", "tuxi": "95311",
}

BRANDS = {
    "sf": "顺丰速运", "zto": "中通快递", "yto": "圆通速递", "sto": "申通快递", "yunda": "韵达快递",
    "jd": "京东快递", "ems": "中国邮政", "jtexpress": "极兔速递", "deppon": "德邦快递",
    "best": "百世快递", "cainiao": "菜鸟", "fengchao": "丰巢", "tuxi": "兔喜",
}

EN_CITIES = [
    "SHENZHEN - CHINA MAINLAND", "GUANGZHOU CITY, CN", "HONG KONG - HONG KONG SAR", "SHANGHAI, CN",
    "LOUISVILLE, KY, US", "MEMPHIS, TN", "INDIANAPOLIS, IN", "ANCHORAGE, AK", "OAKLAND, CA",
    "LOS ANGELES, CA 90001", "CHICAGO, IL", "DALLAS, TX", "JAMAICA, NY", "NEWARK, NJ",
    "CINCINNATI HUB - USA", "LEIPZIG - GERMANY", "EAST MIDLANDS - UK", "BRUSSELS - BELGIUM",
    "ONTARIO, CA, US", "ATLANTA, GA", "SEATTLE, WA 98101", "MIAMI, FL", "DENVER, CO",
    "PHOENIX, AZ", "HOUSTON, TX", "TORONTO, ON, CA", "SINGAPORE - SINGAPORE", "TOKYO, JP",
    "SYDNEY - AUSTRALIA", "PARIS - FRANCE", "AMSTERDAM - NETHERLANDS", "SALT LAKE CITY, UT",
    "HARRISBURG, PA", "COLUMBUS, OH", "SACRAMENTO, CA", "ORLANDO, FL", "PORTLAND, OR",
    "Madrid, ES", "Milan, IT", "Frankfurt, DE", "London, GB", "Zurich, CH", "Seoul, KR",
]

EN_FACILITIES = [
    "Regional Distribution Center", "Network Distribution Center", "Processing and Distribution Center",
    "Sort Facility", "Hub", "Gateway", "Service Center", "Facility", "International Service Center",
    "Sorting Center", "Local Facility", "Delivery Unit", "Post Office", "Distribution Center",
]

EN_NAMES = ["SMITH", "J.GARCIA", "M WONG", "LEE", "PATEL", "K.MUELLER", "ROSSI", "NGUYEN",
            "JOHNSON", "A.BROWN", "TAYLOR", "MARTIN", "CHEN", "KIM", "LOPEZ", "DAVIS"]

EN_PLACES = ["FRONT DOOR", "PORCH", "MAILBOX", "LOADING DOCK", "GARAGE", "BACK DOOR",
             "SIDE DOOR", "OFFICE", "RESIDENCE", "INSIDE GARAGE", "PATIO", "DRIVEWAY"]

EN_PROXIES = ["FRONT DESK", "RECEPTION", "NEIGHBOR", "CONCIERGE", "MAIL ROOM", "SECURITY GUARD",
              "RECEPTIONIST", "LEASING OFFICE", "BUILDING MANAGER", "DOORMAN"]

COUNTRIES = ["China", "Hong Kong", "United States", "Germany", "United Kingdom", "Japan",
             "France", "Netherlands", "Canada", "Australia", "Singapore", "Korea"]
