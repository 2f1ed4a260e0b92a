// Package codes holds the national code tables that event data and golden
// records use: gender (GB/T 2261.1), marital status (GB/T 2261.2), ethnicity
// (GB 3304) and education level (GB/T 4658), plus the unified social credit
// code check (GB 32100).
package codes

// Gender codes of GB/T 2261.1-2003, with the standard's names (男 and 女
// are their usual short forms).
var Gender = map[string]string{"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}

// Marital status codes of GB/T 2261.2-2003.
const (
	MaritalUnmarried = "10"
	MaritalMarried   = "20"
	MaritalWidowed   = "30"
	MaritalDivorced  = "40"
)

// Marital maps GB/T 2261.2-2003 codes to their names.
var Marital = map[string]string{
	"10": "未婚", "20": "已婚", "21": "初婚", "22": "再婚", "23": "复婚",
	"30": "丧偶", "40": "离婚", "90": "未说明的婚姻状况",
}

// Ethnicity maps GB 3304-1991 codes to the names of China's ethnic groups.
var Ethnicity = map[string]string{
	"01": "汉族", "02": "蒙古族", "03": "回族", "04": "藏族", "05": "维吾尔族", "06": "苗族", "07": "彝族",
	"08": "壮族", "09": "布依族", "10": "朝鲜族", "11": "满族", "12": "侗族", "13": "瑶族", "14": "白族",
	"15": "土家族", "16": "哈尼族", "17": "哈萨克族", "18": "傣族", "19": "黎族", "20": "傈僳族", "21": "佤族",
	"22": "畲族", "23": "高山族", "24": "拉祜族", "25": "水族", "26": "东乡族", "27": "纳西族", "28": "景颇族",
	"29": "柯尔克孜族", "30": "土族", "31": "达斡尔族", "32": "仫佬族", "33": "羌族", "34": "布朗族", "35": "撒拉族",
	"36": "毛南族", "37": "仡佬族", "38": "锡伯族", "39": "阿昌族", "40": "普米族", "41": "塔吉克族", "42": "怒族",
	"43": "乌孜别克族", "44": "俄罗斯族", "45": "鄂温克族", "46": "德昂族", "47": "保安族", "48": "裕固族", "49": "京族",
	"50": "塔塔尔族", "51": "独龙族", "52": "鄂伦春族", "53": "赫哲族", "54": "门巴族", "55": "珞巴族", "56": "基诺族",
	"97": "其他", "98": "外国血统中国籍人士",
}

// Education maps GB/T 4658-2006 education level codes to their names.
var Education = map[string]string{
	"10": "研究生教育", "11": "博士研究生毕业", "12": "博士研究生结业", "13": "博士研究生肄业",
	"14": "硕士研究生毕业", "15": "硕士研究生结业", "16": "硕士研究生肄业", "17": "研究生班毕业",
	"18": "研究生班结业", "19": "研究生班肄业",
	"20": "大学本科教育", "21": "大学本科毕业", "22": "大学本科结业", "23": "大学本科肄业", "28": "大学普通班毕业",
	"30": "大学专科教育", "31": "大学专科毕业", "32": "大学专科结业", "33": "大学专科肄业",
	"40": "中等职业教育", "41": "中等专科毕业", "42": "中等专科结业", "43": "中等专科肄业",
	"44": "职业高中毕业", "45": "职业高中结业", "46": "职业高中肄业", "47": "技工学校毕业",
	"48": "技工学校结业", "49": "技工学校肄业",
	"60": "普通高级中学教育", "61": "普通高中毕业", "62": "普通高中结业", "63": "普通高中肄业",
	"70": "初级中学教育", "71": "初中毕业", "73": "初中肄业",
	"80": "小学教育", "81": "小学毕业", "83": "小学肄业",
	"90": "其他",
}

// EducationAlias is what a short name of a GB/T 4658 level stands for. A
// short name such as 本科 names a stage of education, where the table has a
// code for the stage (20 大学本科教育) and codes for leaving it (21 毕业,
// 22 结业, 23 肄业); which one the name means depends on the record.
type EducationAlias struct {
	// Stage is the code of studying at the stage, for an enrolment; ""
	// where the table has none.
	Stage string
	// Graduated is the code of graduating (毕业) from the stage, for a
	// graduation; "" where the name fits several (研究生: a doctorate, a
	// master's or a postgraduate class).
	Graduated string
}

// EducationAliases maps the short names department systems use for GB/T
// 4658 levels to their codes. None is a full name of Education. The
// postgraduate degrees have no stage code of their own: studying for one
// is 10 研究生教育.
var EducationAliases = map[string]EducationAlias{
	"研究生":   {Stage: "10"},
	"博士":    {Stage: "10", Graduated: "11"},
	"博士研究生": {Stage: "10", Graduated: "11"},
	"硕士":    {Stage: "10", Graduated: "14"},
	"硕士研究生": {Stage: "10", Graduated: "14"},
	"本科":    {Stage: "20", Graduated: "21"},
	"大学本科":  {Stage: "20", Graduated: "21"},
	"大专":    {Stage: "30", Graduated: "31"},
	"专科":    {Stage: "30", Graduated: "31"},
	"大学专科":  {Stage: "30", Graduated: "31"},
	"中职":    {Stage: "40"},
	"中专":    {Stage: "40", Graduated: "41"},
	"职高":    {Stage: "40", Graduated: "44"},
	"职业高中":  {Stage: "40", Graduated: "44"},
	"技校":    {Stage: "40", Graduated: "47"},
	"技工学校":  {Stage: "40", Graduated: "47"},
	"高中":    {Stage: "60", Graduated: "61"},
	"普通高中":  {Stage: "60", Graduated: "61"},
	"初中":    {Stage: "70", Graduated: "71"},
	"小学":    {Stage: "80", Graduated: "81"},
}

// EducationRank orders education levels: a smaller rank is a higher level.
// The first digit is the stage (1 postgraduate … 9 other); within a stage the
// code order puts graduation before completion before incomplete study.
func EducationRank(code string) int {
	if len(code) != 2 {
		return 1000
	}
	return int(code[0]-'0')*10 + int(code[1]-'0')
}

const uscsChars = "0123456789ABCDEFGHJKLMNPQRTUWXY"

var uscsWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// USCCCheckChar computes the GB 32100-2015 check character of the first 17
// characters of a unified social credit code; ok is false if a character is
// outside the code's alphabet.
func USCCCheckChar(first17 string) (byte, bool) {
	sum := 0
	for i := 0; i < 17; i++ {
		v := indexOf(first17[i])
		if v < 0 {
			return 0, false
		}
		sum += v * uscsWeights[i]
	}
	c := 31 - sum%31
	if c == 31 {
		c = 0
	}
	return uscsChars[c], true
}

func indexOf(b byte) int {
	for i := 0; i < len(uscsChars); i++ {
		if uscsChars[i] == b {
			return i
		}
	}
	return -1
}

// ValidUSCC reports whether s is an 18-character unified social credit code
// with a correct check character (GB 32100-2015).
func ValidUSCC(s string) bool {
	if len(s) != 18 {
		return false
	}
	c, ok := USCCCheckChar(s[:17])
	return ok && c == s[17]
}
