package synth

import (
	"fmt"
	"slices"
	"strings"
)

// This file lists the counties the generator populates: real county-level
// division codes of the provinces the seed documents come from
// (Heilongjiang, Jilin, Hunan, Zhejiang, Inner Mongolia), with a rough
// weight for how many people live there and the colleges of each city.
// Addresses within a county come from the region table (schemas/region);
// a county the table lacks is left out.

// county is one county-level division.
type county struct {
	code   string // 6-digit division code
	name   string // e.g. 道里区
	city   string // 4-digit city code
	weight int    // relative population (roughly tens of thousands)
}

// cityInfo is a prefecture-level city.
type cityInfo struct {
	code     string // 4-digit
	name     string // e.g. 哈尔滨市
	colleges []college
}

// college is a university or college of a city, with the county it lies in.
type college struct {
	name     string
	county   string
	bachelor bool // awards bachelor degrees (本科); otherwise 专科 only
}

func cities() []cityInfo {
	return []cityInfo{
		{"2301", "哈尔滨市", []college{
			{"哈尔滨工业大学", "230103", true}, {"黑龙江大学", "230103", true}, {"哈尔滨工程大学", "230103", true},
			{"东北林业大学", "230110", true}, {"东北农业大学", "230110", true}, {"哈尔滨医科大学", "230103", true},
			{"哈尔滨理工大学", "230103", true}, {"哈尔滨师范大学", "230109", true}, {"哈尔滨职业技术学院", "230108", false},
		}},
		{"2302", "齐齐哈尔市", []college{{"齐齐哈尔大学", "230203", true}, {"齐齐哈尔工程学院", "230202", false}}},
		{"2306", "大庆市", []college{{"东北石油大学", "230604", true}, {"大庆职业学院", "230602", false}}},
		{"2308", "佳木斯市", []college{{"佳木斯大学", "230803", true}}},
		{"2310", "牡丹江市", []college{{"牡丹江师范学院", "231002", true}, {"牡丹江大学", "231002", false}}},
		{"2202", "吉林市", []college{{"北华大学", "220204", true}, {"东北电力大学", "220202", true}, {"吉林职业技术学院", "220203", false}}},
		{"4301", "长沙市", []college{
			{"中南大学", "430104", true}, {"湖南大学", "430104", true}, {"湖南师范大学", "430104", true},
			{"长沙理工大学", "430103", true}, {"长沙民政职业技术学院", "430103", false},
		}},
		{"3306", "绍兴市", []college{{"绍兴文理学院", "330602", true}, {"绍兴职业技术学院", "330602", false}}},
		{"1504", "赤峰市", []college{{"赤峰学院", "150402", true}, {"赤峰职业技术学院", "150402", false}}},
	}
}

func counties() []county {
	return []county{
		{"230102", "道里区", "2301", 96}, {"230103", "南岗区", "2301", 120}, {"230104", "道外区", "2301", 80},
		{"230108", "平房区", "2301", 20}, {"230109", "松北区", "2301", 35}, {"230110", "香坊区", "2301", 90},
		{"230111", "呼兰区", "2301", 60}, {"230112", "阿城区", "2301", 50}, {"230113", "双城区", "2301", 70},
		{"230202", "龙沙区", "2302", 30}, {"230203", "建华区", "2302", 25},
		{"230602", "萨尔图区", "2306", 40}, {"230603", "龙凤区", "2306", 30}, {"230604", "让胡路区", "2306", 50},
		{"231002", "东安区", "2310", 20},
		{"230803", "向阳区", "2308", 25},
		{"220202", "昌邑区", "2202", 60}, {"220203", "龙潭区", "2202", 45}, {"220204", "船营区", "2202", 40},
		{"430102", "芙蓉区", "4301", 60}, {"430103", "天心区", "4301", 70}, {"430104", "岳麓区", "4301", 150},
		{"330602", "越城区", "3306", 100},
		{"150402", "红山区", "1504", 50},
	}
}

// ethnicities are GB 3304 codes with weights per province: Han everywhere,
// Manchu, Korean, Mongol and Hui in the north-east, Mongol in Inner
// Mongolia, Tujia and Miao in Hunan.
func ethnicities(province string) []weighted {
	switch province {
	case "23":
		return []weighted{{"01", 950}, {"11", 25}, {"10", 8}, {"02", 4}, {"03", 3}, {"31", 2}, {"45", 1}}
	case "22":
		return []weighted{{"01", 910}, {"10", 40}, {"11", 40}, {"03", 5}, {"02", 5}}
	case "15":
		return []weighted{{"01", 780}, {"02", 180}, {"11", 20}, {"03", 10}, {"31", 5}}
	case "43":
		return []weighted{{"01", 900}, {"15", 40}, {"06", 30}, {"12", 10}, {"13", 10}, {"03", 5}}
	}
	return []weighted{{"01", 990}, {"22", 5}, {"03", 5}}
}

type weighted struct {
	v string
	w int
}

// regions is the generator's view of the table, restricted to the
// configured cities.
type regions struct {
	counties []*county
	total    int // sum of weights
	cities   map[string]*cityInfo
	byCode   map[string]*county
	cityList []string // city codes in table order
}

// newRegions selects the counties matching filter: entries are division
// codes or code prefixes ("23", "2301", "230102") or names ("哈尔滨",
// "哈尔滨市", "道里区"). An empty filter selects every county.
func newRegions(filter []string) (*regions, error) {
	rg := &regions{cities: map[string]*cityInfo{}, byCode: map[string]*county{}}
	// A county the region table lacks has no address to draw: leave it out.
	addrs := countyAddresses()
	all := slices.DeleteFunc(counties(), func(c county) bool { return len(addrs[c.code]) == 0 })
	cs := cities()
	cityByCode := map[string]*cityInfo{}
	for i := range cs {
		cityByCode[cs[i].code] = &cs[i]
	}
	match := func(c *county, f string) bool {
		f = strings.TrimSpace(f)
		city := cityByCode[c.city]
		return f != "" && (strings.HasPrefix(c.code, f) || c.name == f || city.name == f || strings.TrimSuffix(city.name, "市") == f)
	}
	for _, f := range filter {
		found := false
		for i := range all {
			if match(&all[i], f) {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("city %q matches no county of the built-in region table", f)
		}
	}
	for i := range all {
		c := &all[i]
		ok := len(filter) == 0
		for _, f := range filter {
			ok = ok || match(c, f)
		}
		if !ok {
			continue
		}
		rg.counties = append(rg.counties, c)
		rg.total += c.weight
		rg.byCode[c.code] = c
		if rg.cities[c.city] == nil {
			rg.cities[c.city] = cityByCode[c.city]
			rg.cityList = append(rg.cityList, c.city)
		}
	}
	return rg, nil
}

// codes lists the selected county codes in the order pick draws from.
func (rg *regions) codes() []string {
	out := make([]string, len(rg.counties))
	for i, c := range rg.counties {
		out[i] = c.code
	}
	return out
}

// pick draws a county by population weight from u in [0, 1).
func (rg *regions) pick(u float64) *county {
	x := int(u * float64(rg.total))
	for _, c := range rg.counties {
		if x < c.weight {
			return c
		}
		x -= c.weight
	}
	return rg.counties[len(rg.counties)-1]
}

// sameProvince is the share of moves to another city that stay within
// the province when it has another city: in China most migrants move
// within their province (2020 census: two thirds of the floating
// population).
const sameProvince = 0.7

// pickOtherCity draws a county of another city than city, weighted, of the
// same province with the share sameProvince when there is one; with a
// single city it draws another county of the same city, and with a single
// county that county.
func (rg *regions) pickOtherCity(u float64, city string) *county {
	if u < sameProvince {
		u /= sameProvince
		if c := rg.pickWhere(u, func(c *county) bool { return c.city != city && c.city[:2] == city[:2] }); c != nil {
			return c
		}
	} else {
		u = (u - sameProvince) / (1 - sameProvince)
	}
	if c := rg.pickWhere(u, func(c *county) bool { return c.city != city }); c != nil {
		return c
	}
	return rg.pick(u)
}

// pickWhere draws a county among those keep accepts, weighted, or nil
// when there is none.
func (rg *regions) pickWhere(u float64, keep func(*county) bool) *county {
	total := 0
	var last *county
	for _, c := range rg.counties {
		if keep(c) {
			total += c.weight
			last = c
		}
	}
	if total == 0 {
		return nil
	}
	x := int(u * float64(total))
	for _, c := range rg.counties {
		if !keep(c) {
			continue
		}
		if x < c.weight {
			return c
		}
		x -= c.weight
	}
	return last
}

// pickInCity draws a county of city, weighted.
func (rg *regions) pickInCity(u float64, city string) *county {
	total := 0
	for _, c := range rg.counties {
		if c.city == city {
			total += c.weight
		}
	}
	x := int(u * float64(total))
	for _, c := range rg.counties {
		if c.city != city {
			continue
		}
		if x < c.weight {
			return c
		}
		x -= c.weight
	}
	return rg.pick(u)
}

// cityCode is the 6-digit code of a county's city, e.g. 230100.
func cityCode(c *county) string { return c.city + "00" }
