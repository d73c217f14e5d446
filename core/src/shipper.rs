//! Kdniao's `ShipperCode`s and our company codes (kuaidi100's), both ways, in one table:
//! the Kdniao plugin sends them and the Kdniao API dialect reads them.

/// Our company codes and Kdniao's `ShipperCode` for them, where they differ by more than
/// case. The first of our codes listed for a `ShipperCode` is the one it reads back as. A
/// code not listed is Kdniao's upper-cased (`SF`, `EMS`, `DHL`, `UPS`, ...).
pub const KDNIAO_SHIPPER_CODES: &[(&str, &str)] = &[
    ("shunfeng", "SF"),
    ("sf", "SF"),
    ("yuantong", "YTO"),
    ("zhongtong", "ZTO"),
    ("shentong", "STO"),
    ("yunda", "YD"),
    ("jd", "JD"),
    ("jingdong", "JD"),
    ("youzhengguonei", "YZPY"),
    ("youzhengbk", "YZBK"),
    ("ems", "EMS"),
    ("huitongkuaidi", "HTKY"),
    ("baishiwuliu", "HTKY"),
    ("tiantian", "HHTT"),
    ("zhaijisong", "ZJS"),
    ("youshuwuliu", "UC"),
    ("debangwuliu", "DBL"),
    ("debangkuaidi", "DBL"),
    ("jtexpress", "JTSD"),
    ("fengwang", "FWX"),
    ("danniao", "DNWL"),
    ("zhongtongkuaiyun", "ZTOKY"),
    ("annengwuliu", "ANE"),
    ("kuayue", "KYSY"),
    ("fedex", "FEDEX"),
];

/// Kdniao's `ShipperCode` for one of our company codes.
///
/// ```
/// use waybill_core::shipper::kdniao_shipper_code;
/// assert_eq!(kdniao_shipper_code("yuantong"), "YTO");
/// assert_eq!(kdniao_shipper_code("Shunfeng"), "SF");
/// assert_eq!(kdniao_shipper_code("dhl"), "DHL"); // not listed: upper-cased
/// ```
pub fn kdniao_shipper_code(company: &str) -> String {
    let company = company.trim().to_ascii_lowercase();
    KDNIAO_SHIPPER_CODES
        .iter()
        .find(|(ours, _)| *ours == company)
        .map(|(_, theirs)| (*theirs).to_owned())
        .unwrap_or_else(|| company.to_ascii_uppercase())
}

/// Our company code for a Kdniao `ShipperCode`, any case; a code not listed is read as
/// our own code, lower-cased (`SANDBOX` is `sandbox`).
///
/// ```
/// use waybill_core::shipper::company_of_kdniao_shipper;
/// assert_eq!(company_of_kdniao_shipper("SF"), "shunfeng");
/// assert_eq!(company_of_kdniao_shipper("dbl"), "debangwuliu");
/// assert_eq!(company_of_kdniao_shipper("SANDBOX"), "sandbox");
/// ```
pub fn company_of_kdniao_shipper(code: &str) -> String {
    let code = code.trim();
    KDNIAO_SHIPPER_CODES
        .iter()
        .find(|(_, theirs)| theirs.eq_ignore_ascii_case(code))
        .map(|(ours, _)| (*ours).to_owned())
        .unwrap_or_else(|| code.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipper_code_reads_back_as_a_company_that_sends_it() {
        for (_, theirs) in KDNIAO_SHIPPER_CODES {
            let ours = company_of_kdniao_shipper(theirs);
            assert_eq!(kdniao_shipper_code(&ours), *theirs);
        }
    }
}
