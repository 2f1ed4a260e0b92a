package synth

import (
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

// Citizen IDs must never collide within a run, yet the generator keeps no
// set of the IDs it gave out. So an ID is a function of the person's index
// alone: persons 2k (a woman) and 2k+1 (a man) share the "slot" k. A slot
// is a pair (birth day, sequence index s), and slots are laid out so that
// each birth day holds as many sequence indexes as its cohort is large:
// the age pyramid is that of the table below. Slot k is found by a
// multiplicative permutation of the slot space (so that consecutive
// persons are of all ages), and the woman is born on the slot's day, the
// man g(s) days earlier. His age gap depends on s only, and is taken
// modulo a run of days: so for each s the men's birth days are a rotation
// of the women's, still distinct. The run is all days, except for the
// sequence indexes of the babies born in the window: for those it ends
// with the oldest cohort that has the index, so that the boys of the
// window's last days come from the women of that cohort (over all days,
// they would come from the oldest cohorts, which have few sequence
// indexes, and boys would be born ever fewer as the window goes on). The
// ID's
// sequence digits are 2s+1 for the man and 2s for the woman (the 17th
// digit is odd for men, even for women). When the slot space is used up,
// a new round starts with sequence indexes above the largest cohort's, so
// IDs stay unique up to MaxPersons.
//
// Unpaired men: so that men outnumber women as in China (about 105 to
// 100, 110 at birth), in a share of the slots of the first round person
// 2k is a man too, born on the slot's day: the two never marry each
// other. His sequence index is the slot's (below unpairedSeqs) moved to
// the indexes no round uses (rounds*maxPerDay and up), with the odd digits
// of a man; a slot of the first round is unique for its day and index, so
// his ID is too. Slots of later rounds (populations of some hundred
// thousand persons and more) are all pairs: there the ratio tends to 100.

// cohorts gives, for bands of age at the start of the window, the number of
// sequence indexes per birth day: roughly China's 2020s population by age
// (the 1960s and 1980s–90s booms, the recent fall in births). The first
// band is babies born after the window starts: over the window, and at
// least over two years.
var cohortTable = []struct{ fromAge, toAge, perDay int }{
	{-2, 0, 4}, {0, 5, 4}, {5, 10, 7}, {10, 15, 6}, {15, 20, 6}, {20, 25, 6}, {25, 30, 6},
	{30, 35, 9}, {35, 40, 8}, {40, 45, 7}, {45, 50, 8}, {50, 55, 10}, {55, 60, 9},
	{60, 65, 6}, {65, 70, 6}, {70, 75, 4}, {75, 80, 3}, {80, 85, 2}, {85, 90, 1},
}

const (
	unpairedSeqs       = maxSeq - rounds*maxPerDay // sequence indexes free for unpaired men: 9
	maxPerDay          = 10                        // the largest perDay above
	maxSeq             = 499                       // sequence indexes per gender: three digits, one parity, never 000 or 001
	rounds             = maxSeq / maxPerDay
	defaultNewbornDays = 730 // days of the first band, unless the window is longer
)

// band is a run of birth days with the same slots per day. Days are
// counted backwards from the window's first day: d = 0 is that day,
// d = 1 the day before, d < 0 after it.
type band struct {
	d0, d1 int   // days [d0, d1)
	perDay int   // slots per day
	first  int64 // index of the first slot of the band
}

// slotSpace maps a slot number to a birth day and a sequence index.
type slotSpace struct {
	bands    []band
	total    int64             // slots per round (= persons per gender per round)
	mult     int64             // permutation multiplier, coprime with total
	offset   int64             // permutation offset, from the seed
	runs     [maxPerDay][2]int // per sequence index within a round: the days [from, to) men's birth days rotate over
	startDay time.Time
	seed     int64
}

func dayOfAge(years int) int { return years * 36525 / 100 }

func newSlotSpace(seed int64, start time.Time, newbornDays int) *slotSpace {
	s := &slotSpace{startDay: time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, china), seed: seed}
	for _, c := range cohortTable {
		var b band
		if c.fromAge < 0 {
			b = band{d0: -newbornDays + 1, d1: 1, perDay: c.perDay}
		} else {
			b = band{d0: dayOfAge(c.fromAge) + 1, d1: dayOfAge(c.toAge) + 1, perDay: c.perDay}
		}
		b.first = s.total
		s.total += int64(b.d1-b.d0) * int64(b.perDay)
		s.bands = append(s.bands, b)
	}
	for i := range s.runs {
		s.runs[i] = [2]int{s.bands[0].d0, s.bands[len(s.bands)-1].d1}
		if i < s.bands[0].perDay {
			for _, b := range s.bands {
				if b.perDay > i {
					s.runs[i][1] = b.d1
				}
			}
		}
	}
	// A step of the golden ratio of the space spreads consecutive slots
	// evenly over all ages (a Weyl sequence).
	s.mult = int64(float64(s.total) * 0.6180339887498949)
	for gcd(s.mult, s.total) != 1 {
		s.mult++
	}
	s.offset = int64(mix(uint64(seed), 0x5107) % uint64(s.total))
	return s
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// maxPersons is how many persons get distinct IDs.
func (s *slotSpace) maxPersons() int64 { return 2 * s.total * rounds }

// slot returns the woman's birth-day offset and the sequence index of
// slot k.
func (s *slotSpace) slot(k int64) (d, seq int) {
	round, kk := k/s.total, k%s.total
	pos := (kk*s.mult + s.offset) % s.total
	i := sort.Search(len(s.bands), func(i int) bool {
		return s.bands[i].first+int64(s.bands[i].d1-s.bands[i].d0)*int64(s.bands[i].perDay) > pos
	})
	b := s.bands[i]
	o := pos - b.first
	return b.d0 + int(o/int64(b.perDay)), int(round)*maxPerDay + int(o%int64(b.perDay))
}

// manGap is how many days before his wife-to-be the man of a slot with
// sequence index seq is born: from a year younger to five years older.
func manGap(seq int) int { return (seq*389+97)%2200 - 365 }

// unpairedShare is the share of the first round's slots, by the woman's
// birth-day offset d, whose person 2k is a man: 4.5% under 40 (a sex
// ratio of about 109, as at birth and among the young since the 1990s),
// 1.2% from 40 to 60 (102), none older (where women's longer lives bring
// China's ratio under 100, and deaths here do not depend on sex); about
// 105 overall, as in the 2020 census.
func unpairedShare(d int) float64 {
	switch {
	case d <= dayOfAge(40):
		return 0.045
	case d <= dayOfAge(60):
		return 0.012
	}
	return 0
}

// unpaired reports whether the slot k, of day offset d and sequence index
// seq, holds two men (see Unpaired men above).
func (s *slotSpace) unpaired(k int64, d, seq int) bool {
	if k >= s.total || seq >= unpairedSeqs {
		return false
	}
	return float64(mix(uint64(s.seed), uint64(k)^0x5e0)>>11)/(1<<53) < unpairedShare(d)
}

// birth returns the birth date and sequence digits of person n; odd
// digits (the 17th digit of the ID) for a man.
func (s *slotSpace) birth(n int64) (time.Time, int) {
	d, seq := s.slot(n / 2)
	digits := 2 * (seq + 1)
	if n%2 == 0 && s.unpaired(n/2, d, seq) {
		return s.startDay.AddDate(0, 0, -d), 2*(rounds*maxPerDay+seq+1) + 1
	}
	if n%2 == 1 {
		from, to := s.runs[seq%maxPerDay][0], s.runs[seq%maxPerDay][1]
		d = from + ((d-from+manGap(seq))%(to-from)+(to-from))%(to-from)
		digits++
	}
	return s.startDay.AddDate(0, 0, -d), digits
}

// makeID builds a citizen ID from county, birth date and sequence digits.
func makeID(county string, birth time.Time, seq int) citizenid.ID {
	b := make([]byte, 0, 18)
	b = append(b, county...)
	b = birth.AppendFormat(b, "20060102")
	if seq < 100 {
		b = append(b, '0')
	}
	if seq < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, citizenid.CheckChar(string(b)))
	return citizenid.ID(b)
}

// mix is SplitMix64's finaliser: a cheap, well-spread hash for deriving
// independent random streams from (seed, person, stream).
func mix(a, b uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 + b + 0x632be59bd9b4e5f5
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Random streams of a person: each is seeded from (seed, person, stream),
// so that what one stream draws never shifts another.
const (
	streamProfile = iota + 1
	streamLife
	streamArrival
	streamPair
	streamPlace
)

func newRand(seed int64, n int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), mix(uint64(n), stream)))
}

// Names: the most common surnames with rough weights, and given names that
// lean male or female.
var (
	surnames = []weighted{
		{"王", 72}, {"李", 70}, {"张", 66}, {"刘", 54}, {"陈", 46}, {"杨", 34}, {"黄", 25}, {"赵", 22},
		{"吴", 21}, {"周", 21}, {"徐", 15}, {"孙", 15}, {"马", 13}, {"朱", 12}, {"胡", 11}, {"郭", 11},
		{"何", 10}, {"高", 10}, {"林", 10}, {"罗", 9}, {"郑", 9}, {"梁", 8}, {"谢", 7}, {"宋", 6},
		{"唐", 6}, {"许", 6}, {"韩", 6}, {"冯", 5}, {"邓", 5}, {"曹", 5}, {"于", 5}, {"董", 4},
	}
	givenMale = []string{"伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华",
		"飞", "鑫", "波", "斌", "宇", "浩", "凯", "健", "俊", "帆", "建华", "建国", "志强", "晓东", "海涛", "国庆",
		"子轩", "浩然", "宇航", "博文", "俊杰", "文博", "天佑", "明轩", "建军", "永刚", "振华", "立新"}
	givenFemale = []string{"芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀英", "桂英", "玉兰", "秀兰", "丹", "萍",
		"玲", "燕", "红", "婷", "雪", "琳", "晶", "颖", "倩", "佳", "欣怡", "梓涵", "雨涵", "诗涵", "紫萱", "晓燕",
		"海燕", "丽娟", "春梅", "淑珍", "雅琴", "思雨", "佳怡", "一诺", "梦瑶", "慧敏"}
)

func pickWeighted(r *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.w
	}
	x := r.IntN(total)
	for _, w := range ws {
		if x < w.w {
			return w.v
		}
		x -= w.w
	}
	return ws[len(ws)-1].v
}

func randomName(r *rand.Rand, male bool) string {
	given := givenFemale
	if male {
		given = givenMale
	}
	return pickWeighted(r, surnames) + given[r.IntN(len(given))]
}

var digitNumerals = []string{"", "一", "二", "三", "四", "五", "六", "七", "八", "九"}

// numeral writes 1..99 in Chinese numerals (二十五), other numbers in
// digits.
func numeral(i int) string {
	switch {
	case i >= 1 && i <= 9:
		return digitNumerals[i]
	case i >= 10 && i <= 19:
		return "十" + digitNumerals[i%10]
	case i >= 20 && i <= 99:
		return digitNumerals[i/10] + "十" + digitNumerals[i%10]
	}
	return strconv.Itoa(i)
}
