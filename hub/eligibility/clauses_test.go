package eligibility_test

import (
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// Event builders for hand-worked cases. Times are the days the department
// sent the event; data dates are what the event says.

func contract(id, region, start, end string) eligibility.CaseEvent {
	d := map[string]any{"contract_id": id, "employer_id": "91230100MA1234567X", "employer_name": "employer",
		"work_region": region, "start": start}
	if end != "" {
		d["end"] = end
	}
	return eligibility.CaseEvent{Type: schemas.ContractStarted, Time: start, Data: d}
}

func lease(id, address, start, end string) eligibility.CaseEvent {
	d := map[string]any{"lease_id": id, "address_code": address, "start": start}
	if end != "" {
		d["end"] = end
	}
	return eligibility.CaseEvent{Type: schemas.RentalRegistered, Time: start, Data: d}
}

func leaseEnded(id, end string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.RentalEnded, Time: end, Data: map[string]any{"lease_id": id, "end": end}}
}

func contrib(region, months string, kinds ...string) eligibility.CaseEvent {
	ks := make([]any, len(kinds))
	for i, k := range kinds {
		ks[i] = k
	}
	return eligibility.CaseEvent{Type: schemas.ContributionRecorded, Months: months, Data: map[string]any{"region": region, "insurances": ks}}
}

func home(id, address, at string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.PropertyRegistered, Time: at, Data: map[string]any{"property_id": id, "address_code": address, "acquired": "purchase"}}
}

func graduated(level, date string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.EducationGraduated, Time: date, Data: map[string]any{"institution": "某学院", "level": level, "date": date, "certificate_no": "C-1"}}
}

func enrolled(institution, region, start string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.EducationEnrolled, Time: start, Data: map[string]any{"institution": institution, "level": "20", "region": region, "start": start}}
}

func business(id, region, at string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.BusinessRegistered, Time: at, Data: map[string]any{"business_id": id, "region": region}}
}

// registeredOn is ev sent on day registered, ahead of the start it states.
func registeredOn(registered string, ev eligibility.CaseEvent) eligibility.CaseEvent {
	ev.Time = registered
	return ev
}

func evs(groups ...any) []eligibility.CaseEvent {
	var out []eligibility.CaseEvent
	for _, g := range groups {
		switch x := g.(type) {
		case eligibility.CaseEvent:
			out = append(out, x)
		case []eligibility.CaseEvent:
			out = append(out, x...)
		}
	}
	return out
}

// Addresses and people used across cases.
const (
	ruralSuihua  = "231221100200" // 望奎县, outside every Heilongjiang city district
	mudanjiangA  = "231002001001"
	mudanjiangB  = "231003001001"
	jiamusi      = "230803001001"
	daqingAddr   = "230602013001"
	qiqiharAddr  = "230202001001"
	harbinAddr   = "230103001001"
	jilinCity    = "220202001001"
	chifengAddr  = "150402001001"
	innerMongol  = "150121100200" // 土默特左旗, Inner Mongolia but not Chifeng
	shaoxingAddr = "330602001004"
	zhangjiajie  = "430802001001"
	yueyang      = "430602001001"
	hengyang     = "430405001001"
	changsha     = "430102001001"
	zhuzhou      = "430202001001"
	changshaXian = "430121100200" // 长沙县: Changsha, but not a district
	// Rural and urban addresses inside the places, by the region table.
	chifengVillage    = "150421100200" // 阿鲁科尔沁旗 天山镇 杨树林村民委员会 (rural)
	yongjiVillage     = "220221100200" // 永吉县 口前镇 歪头村 (rural)
	yongjiVillage2    = "220221100201" // 永吉县 口前镇 四间村 (rural)
	yongjiTown        = "220221100001" // 永吉县 口前镇 河北社区 (urban, the county seat)
	mudanjiangVillage = "231002008201" // 牡丹江 东安区 下乜河村委会 (rural, inside the district)
	harbinVillage     = "230103020200" // 哈尔滨 南岗区 翻身村村委会 (rural, inside the district)
)

var outsider = eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: ruralSuihua}

// mudanjiangWorker meets every nine-cities clause on 2024-07-15 with
// months to spare; cases replace one fact at a time.
func mudanjiangWorker(extra ...any) []eligibility.CaseEvent {
	return evs(append([]any{contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""),
		contrib("231002", "2023-01..2024-06", "pension")}, extra...)...)
}

// certified is a death certificate sent on day issued, dating the death
// on died.
func certified(issued, died string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.DeathCertified, Time: issued, Data: map[string]any{"date_of_death": died, "certificate_no": "D1"}}
}

func hukouCancelled(at, reason string) eligibility.CaseEvent {
	return eligibility.CaseEvent{Type: schemas.HukouCancelled, Time: at, Data: map[string]any{"reason": reason}}
}

type clauseCase struct {
	policy string
	// seed is the sentence of the seed the case checks.
	seed string
	c    eligibility.Case
}

func clauseCases() []clauseCase {
	const (
		hlj9   = "黑政发〔2014〕25号 一（一）"
		hljDQ  = "黑政发〔2014〕25号 一（二）"
		hljHRB = "黑政发〔2014〕25号 一（三）"
	)
	return []clauseCase{
		// --- heilongjiang/nine-cities
		{"heilongjiang/nine-cities", hlj9 + " 签订半年以上劳动合同, 同一地址租住半年以上, 参加城镇社会保险满1年", eligibility.Case{
			Name: "all met", AsOf: "2024-07-15", Person: outsider, Events: mudanjiangWorker(),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"hukou_elsewhere": true, "contract": true, "residence": true, "insurance": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 签订半年以上劳动合同: a term of exactly 6 months", eligibility.Case{
			Name: "contract exactly 6 months", AsOf: "2024-03-01", Person: outsider,
			Events: evs(contract("C1", "231002", "2024-01-01", "2024-06-30")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 签订半年以上劳动合同: one day short of 6 months", eligibility.Case{
			Name: "contract one day short", AsOf: "2024-03-01", Person: outsider,
			Events: evs(contract("C1", "231002", "2024-01-01", "2024-06-29")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": false}}}},
		{"heilongjiang/nine-cities", hlj9 + " 签订半年以上劳动合同: an open-ended contract", eligibility.Case{
			Name: "open-ended contract", AsOf: "2024-01-02", Person: outsider,
			Events: evs(contract("C1", "231002", "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 在城市合法稳定就业: the contract must be in the same city as the home", eligibility.Case{
			Name: "contract in another city", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "230803", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": false, "residence": true, "insurance": true}, QualifiesOn: "none"}}},
		{"heilongjiang/nine-cities", hlj9 + " 在同一地址租住半年以上: exactly 6 months", eligibility.Case{
			Name: "rental exactly 6 months", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2024-01-15", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 在同一地址租住半年以上: one day short", eligibility.Case{
			Name: "rental one day short", AsOf: "2024-07-13", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2024-01-15", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false, "insurance": true}, QualifiesOn: "2024-07-14"}}},
		{"heilongjiang/nine-cities", hlj9 + " 在同一地址租住半年以上: moving to another address starts again", eligibility.Case{
			Name: "rental moved", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), leaseEnded("L1", "2024-03-31"),
				lease("L2", mudanjiangB, "2024-04-01", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}, QualifiesOn: "2024-09-30"}}},
		{"heilongjiang/nine-cities", hlj9 + " 在同一地址租住半年以上: a lease renewed at the same address is continuous", eligibility.Case{
			Name: "rental renewed", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", "2023-12-31"),
				lease("L2", mudanjiangA, "2024-01-01", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 有合法稳定住所: an owned home", eligibility.Case{
			Name: "owns a home", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), home("P1", mudanjiangA, "2024-07-01"), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 参加城镇社会保险满1年: exactly 12 months", eligibility.Case{
			Name: "insurance exactly 12", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), contrib("231002", "2023-07..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"insurance": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 参加城镇社会保险满1年: 11 months, still paying", eligibility.Case{
			Name: "insurance 11 months", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), contrib("231002", "2023-08..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"insurance": false}, QualifiesOn: "2024-07-16"}}},
		{"heilongjiang/nine-cities", hlj9 + " 参加城镇社会保险满1年: lapsed and resumed, 6 + 6 months", eligibility.Case{
			Name: "insurance lapsed and resumed", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""),
				contrib("231002", "2023-01..2023-06", "pension"), contrib("231002", "2024-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"insurance": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 参加城镇社会保险满1年: lapsed for good, 6 + 5 months", eligibility.Case{
			Name: "insurance lapsed", AsOf: "2024-09-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""),
				contrib("231002", "2023-01..2023-06", "pension"), contrib("231002", "2024-01..2024-05", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"insurance": false}, QualifiesOn: "none"}}},
		{"heilongjiang/nine-cities", hlj9 + " 同一地址租住半年以上……参加城镇社会保险满1年: the lease ends before the insurance year is complete", eligibility.Case{
			Name: "lease ends before the insurance year", AsOf: "2024-04-20", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2024-01-01", "2024-12-31"), contrib("231002", "2024-03..2024-04", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": true, "residence": false, "insurance": false}, QualifiesOn: "none"}}},
		{"heilongjiang/nine-cities", hlj9 + " 同一地址租住半年以上……参加城镇社会保险满1年: a renewal registered ahead keeps the home until the insurance year is complete", eligibility.Case{
			Name: "lease renewed ahead of the insurance year", AsOf: "2024-04-20", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2024-01-01", "2024-12-31"),
				registeredOn("2024-04-10", lease("L2", mudanjiangA, "2025-01-01", "")), contrib("231002", "2024-03..2024-04", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": true, "residence": false, "insurance": false}, QualifiesOn: "2025-02-01"}}},
		{"heilongjiang/nine-cities", hlj9 + " 参加城镇社会保险满1年 (no 当地): contributions in another city count", eligibility.Case{
			Name: "insurance elsewhere", AsOf: "2024-07-15", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), contrib("230803", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"insurance": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: already registered there", eligibility.Case{
			Name: "hukou already local", AsOf: "2024-07-15", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: mudanjiangB}, Events: mudanjiangWorker(),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_elsewhere": false}}}},
		{"heilongjiang/nine-cities", hlj9 + " 本人及其共同居住生活的配偶、未成年子女、父母", eligibility.Case{
			Name: "family", AsOf: "2024-07-15", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: ruralSuihua, Household: "H1"},
			Family: []eligibility.CasePerson{
				{BirthDate: "1991-03-01", Hukou: ruralSuihua, Household: "H1", MarriedOn: "2014-05-01"},
				{BirthDate: "2015-06-01", Hukou: ruralSuihua, Household: "H1"},
				{BirthDate: "2005-06-01", Hukou: ruralSuihua, Household: "H1"}, // adult child: not 未成年
				{BirthDate: "1962-02-01", Hukou: ruralSuihua, Household: "H1"},
				{BirthDate: "1995-02-01", Hukou: ruralSuihua, Household: "H1"}, // sibling: not listed
				{BirthDate: "2016-02-01", Hukou: ruralSuihua, Household: "H9"}, // another household
			},
			Events: mudanjiangWorker(),
			Expect: eligibility.CaseExpect{Eligible: true, Family: []string{"spouse", "child", "parent"}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: a deceased person is not eligible", eligibility.Case{
			Name: "deceased", AsOf: "2024-07-15", Person: outsider, Events: mudanjiangWorker(), Status: "deceased",
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"status": false}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: as of a day before a later death, the person was alive", eligibility.Case{
			Name: "as of a day before a later death", AsOf: "2024-07-15", Person: outsider, Status: "deceased",
			Events: mudanjiangWorker(certified("2025-01-10", "2025-01-10")),
			Expect: eligibility.CaseExpect{Eligible: true}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: dead by the day, though certified after it", eligibility.Case{
			Name: "died before as_of, certified after", AsOf: "2024-07-15", Person: outsider, Status: "deceased",
			Events: mudanjiangWorker(certified("2024-07-20", "2024-07-10")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"status": false}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: a certificate in force by the day counts whatever date of death it gives", eligibility.Case{
			Name: "certified before as_of, dated after it", AsOf: "2024-07-11", Person: outsider, Status: "deceased",
			Events: mudanjiangWorker(certified("2024-07-10", "2024-07-12")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"status": false}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: no qualifying day after a death the history holds", eligibility.Case{
			Name: "rental moved, died before the predicted day", AsOf: "2024-07-15", Person: outsider, Status: "deceased",
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), leaseEnded("L1", "2024-03-31"),
				lease("L2", mudanjiangB, "2024-04-01", ""), contrib("231002", "2023-01..2024-06", "pension"), certified("2024-08-05", "2024-08-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}, QualifiesOn: "none"}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: no qualifying day on the day of a death the history holds", eligibility.Case{
			Name: "rental moved, died on the predicted day", AsOf: "2024-07-15", Person: outsider, Status: "deceased",
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), leaseEnded("L1", "2024-03-31"),
				lease("L2", mudanjiangB, "2024-04-01", ""), contrib("231002", "2023-01..2024-06", "pension"), certified("2024-10-08", "2024-09-30")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}, QualifiesOn: "none"}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: a death after the predicted day leaves the day", eligibility.Case{
			Name: "rental moved, died after the predicted day", AsOf: "2024-07-15", Person: outsider, Status: "deceased",
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), leaseEnded("L1", "2024-03-31"),
				lease("L2", mudanjiangB, "2024-04-01", ""), contrib("231002", "2023-01..2024-06", "pension"), certified("2024-10-08", "2024-10-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}, QualifiesOn: "2024-09-30"}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: no qualifying day after a cancellation the history holds", eligibility.Case{
			Name: "rental moved, cancelled before the predicted day", AsOf: "2024-07-15", Person: outsider, Status: "cancelled",
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2023-01-01", ""), leaseEnded("L1", "2024-03-31"),
				lease("L2", mudanjiangB, "2024-04-01", ""), contrib("231002", "2023-01..2024-06", "pension"), hukouCancelled("2024-08-01", "emigration")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}, QualifiesOn: "none"}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: a hukou cancelled (emigration) by the day", eligibility.Case{
			Name: "cancelled as of the day", AsOf: "2024-07-15", Person: outsider, Status: "cancelled",
			Events: mudanjiangWorker(hukouCancelled("2024-07-01", "emigration")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"status": false}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: as of a day before a later cancellation", eligibility.Case{
			Name: "as of a day before a later cancellation", AsOf: "2024-07-15", Person: outsider, Status: "cancelled",
			Events: mudanjiangWorker(hukouCancelled("2024-08-01", "emigration")),
			Expect: eligibility.CaseExpect{Eligible: true}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: a villager of the district moving into town", eligibility.Case{
			Name: "district villager moves into town", AsOf: "2024-07-15",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: mudanjiangVillage}, Events: mudanjiangWorker(),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"hukou_elsewhere": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: a villager of the district without a town home", eligibility.Case{
			Name: "district villager renting in a village", AsOf: "2024-07-15",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: mudanjiangVillage},
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangVillage, "2023-01-01", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"hukou_elsewhere": false, "residence": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 可以在当地申请登记常住户口: a villager's town lease registered ahead is foreseen", eligibility.Case{
			Name: "district villager with a town lease registered ahead", AsOf: "2024-07-15",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: mudanjiangVillage},
			Events: evs(contract("C1", "231002", "2023-01-01", ""), registeredOn("2024-07-10", lease("L2", mudanjiangA, "2024-08-01", "")),
				contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"hukou_elsewhere": false, "residence": false}, QualifiesOn: "2025-01-31"}}},
		{"heilongjiang/nine-cities", hlj9 + " 在同一地址租住半年以上: a 6-month lease 01-01..06-30 is half a year, as a 6-month contract is", eligibility.Case{
			Name: "six-month lease held to its end", AsOf: "2024-06-30", Person: outsider,
			Events: evs(contract("C1", "231002", "2024-01-01", "2024-06-30"), lease("L1", mudanjiangA, "2024-01-01", "2024-06-30"),
				contrib("231002", "2023-07..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"contract": true, "residence": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 参加城镇社会保险满1年 (no 当地): 11 months in Harbin, transferred (转移接续) to Mudanjiang, 2 more there", eligibility.Case{
			Name: "insurance transferred from Harbin", AsOf: "2024-02-10", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-12-01", ""), lease("L1", mudanjiangA, "2023-06-01", ""),
				contrib("230103", "2023-01..2023-11", "pension"),
				eligibility.CaseEvent{Type: schemas.InsuranceTransferred, Time: "2023-12-05", Data: map[string]any{"from_region": "230103", "to_region": "231002"}},
				contrib("231002", "2023-12..2024-01", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"insurance": true}}}},

		// --- heilongjiang/daqing and qiqihar
		{"heilongjiang/daqing", hljDQ + " 签订1年以上劳动合同, 同一地址租住2年以上, 参加城镇社会保险满2年", eligibility.Case{
			Name: "all met at exactly two years", AsOf: "2025-03-01", Person: outsider,
			Events: evs(contract("C1", "230602", "2024-04-01", "2025-03-31"), lease("L1", daqingAddr, "2023-03-01", ""), contrib("230604", "2023-03..2025-02", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"contract": true, "residence": true, "insurance": true}}}},
		{"heilongjiang/daqing", hljDQ + " 签订1年以上劳动合同: a term one day short of a year", eligibility.Case{
			Name: "contract short", AsOf: "2025-01-01", Person: outsider,
			Events: evs(contract("C1", "230602", "2024-03-01", "2025-02-27")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": false}}}},
		{"heilongjiang/daqing", hljDQ + " 在同一地址租住2年以上: one day short", eligibility.Case{
			Name: "rental one day short", AsOf: "2025-02-27", Person: outsider,
			Events: evs(contract("C1", "230602", "2024-03-01", ""), lease("L1", daqingAddr, "2023-03-01", ""), contrib("230604", "2023-01..2025-02", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false, "insurance": true}, QualifiesOn: "2025-02-28"}}},
		{"heilongjiang/daqing", hljDQ + " 参加城镇社会保险满2年: 23 months", eligibility.Case{
			Name: "insurance 23", AsOf: "2025-03-01", Person: outsider,
			Events: evs(contract("C1", "230602", "2024-03-01", ""), lease("L1", daqingAddr, "2023-03-01", ""), contrib("230604", "2023-04..2025-02", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"insurance": false}, QualifiesOn: "2025-03-02"}}},
		{"heilongjiang/daqing", hljDQ + " 可以在当地申请登记常住户口: already registered in Daqing", eligibility.Case{
			Name: "hukou in Daqing", AsOf: "2025-03-01", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: daqingAddr},
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_elsewhere": false}}}},
		{"heilongjiang/daqing", hljDQ + " 可以在当地申请登记常住户口: no registration on record is not a hukou elsewhere", eligibility.Case{
			Name: "hukou not yet known", AsOf: "2025-03-01", Person: eligibility.CasePerson{BirthDate: "1990-01-01"},
			Events: evs(contract("C1", "230602", "2024-03-01", ""), lease("L1", daqingAddr, "2023-01-01", ""), contrib("230604", "2023-01..2025-02", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_elsewhere": false, "contract": true, "residence": true, "insurance": true}}}},
		{"heilongjiang/qiqihar", hljDQ + " 在同一地址租住2年以上 (齐齐哈尔)", eligibility.Case{
			Name: "qiqihar all met", AsOf: "2025-03-01", Person: outsider,
			Events: evs(contract("C1", "230202", "2024-03-01", ""), lease("L1", qiqiharAddr, "2023-01-01", ""), contrib("230202", "2023-01..2025-02", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"contract": true, "residence": true, "insurance": true}}}},

		// --- heilongjiang/harbin (points)
		{"heilongjiang/harbin", hljHRB + " 使达到规定分值的外来务工人员: 54 points after three years", eligibility.Case{
			Name: "points reached", AsOf: "2024-01-10", Person: outsider,
			Events: evs(contract("C1", "230103", "2021-01-01", ""), lease("L1", harbinAddr, "2021-01-01", ""), contrib("230103", "2021-01..2023-12", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"points": true}}}},
		{"heilongjiang/harbin", hljHRB + " 合理设置积分: 41 points the day before, 54 the next day", eligibility.Case{
			Name: "points one day short", AsOf: "2023-12-30", Person: outsider,
			Events: evs(contract("C1", "230103", "2021-01-01", ""), lease("L1", harbinAddr, "2021-01-01", ""), contrib("230103", "2021-01..2023-12", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"points": false}, QualifiesOn: "2023-12-31"}}},
		{"heilongjiang/harbin", hljHRB + " 合理设置积分: every day counts, so three years from 1 January are held on 31 December", eligibility.Case{
			Name: "points on the last day of the third year", AsOf: "2023-12-31", Person: outsider,
			Events: evs(contract("C1", "230103", "2021-01-01", ""), lease("L1", harbinAddr, "2021-01-01", ""), contrib("230103", "2020-12..2023-11", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"points": true}}}},
		{"heilongjiang/harbin", hljHRB + " 合法稳定住所（含租赁）: moving house, the new lease scores from its own start once the old one ends", eligibility.Case{
			Name: "points after moving house", AsOf: "2025-03-15", Person: outsider,
			Events: evs(contract("C1", "230103", "2021-01-01", ""), lease("LA", "230102001001", "2022-01-01", "2025-03-31"), lease("LB", harbinAddr, "2025-03-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"points": false}, QualifiesOn: "2028-02-29"}}},

		// --- jilin
		{"jilin/counties", "吉市政发〔2015〕5号 （十一） 在……县政府驻地镇……有合法稳定住所（含租赁房屋）", eligibility.Case{
			Name: "renting in a county seat", AsOf: "2024-01-02", Person: outsider, Events: evs(lease("L1", yongjiTown, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true}}}},
		{"jilin/counties", "吉市政发〔2015〕5号 （十一） 有合法稳定住所: an ended lease is no residence", eligibility.Case{
			Name: "lease ended", AsOf: "2024-06-02", Person: outsider, Events: evs(lease("L1", yongjiTown, "2024-01-01", ""), leaseEnded("L1", "2024-06-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}}}},
		{"jilin/city", "吉市政发〔2015〕5号 （十二） 同时参加养老保险、医疗保险、失业保险一年以上", eligibility.Case{
			Name: "all three insurances", AsOf: "2025-01-20", Person: outsider,
			Events: evs(contract("C1", "220204", "2024-01-01", ""), lease("L1", jilinCity, "2023-01-01", ""), contrib("220202", "2024-01..2024-12", "pension", "medical", "unemployment")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true, "job": true, "insurance": true}}}},
		{"jilin/city", "吉市政发〔2015〕5号 （十二） 同时参加……失业保险一年以上: unemployment 11 months", eligibility.Case{
			Name: "unemployment short", AsOf: "2025-01-20", Person: outsider,
			Events: evs(contract("C1", "220204", "2024-01-01", ""), lease("L1", jilinCity, "2023-01-01", ""), contrib("220202", "2024-01..2024-12", "pension", "medical"), contrib("220202", "2024-02..2024-12", "unemployment")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"insurance": false}}}},
		{"jilin/city", "吉市政发〔2015〕5号 （十二） 同时参加养老保险、医疗保险、失业保险一年以上: a year of each in three different years is not a year of the three at the same time", eligibility.Case{
			Name: "insurances in turn, never together", AsOf: "2025-06-15", Person: outsider,
			Events: evs(contract("C1", "220202", "2021-01-01", ""), lease("L1", jilinCity, "2021-01-01", ""), contrib("220202", "2021-01..2021-12", "pension"),
				contrib("220202", "2022-01..2022-12", "medical"), contrib("220202", "2023-01..2023-12", "unemployment")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": true, "job": true, "insurance": false}, QualifiesOn: "none"}}},
		{"jilin/city", "吉市政发〔2015〕5号 （十二） 同时参加……一年以上: 12 months of each, one of them together; the other eleven still to come", eligibility.Case{
			Name: "insurances overlap one month", AsOf: "2025-01-20", Person: outsider,
			Events: evs(contract("C1", "220204", "2024-01-01", ""), lease("L1", jilinCity, "2023-01-01", ""),
				contrib("220202", "2024-01..2024-12", "pension", "medical"), contrib("220202", "2023-01..2023-11", "unemployment"), contrib("220202", "2024-12..2024-12", "unemployment")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": true, "job": true, "insurance": false}, QualifiesOn: "2025-11-01"}}},
		{"jilin/city", "吉市政发〔2015〕5号 （十二） 含租赁房屋两年以上: 23 months", eligibility.Case{
			Name: "rental short", AsOf: "2025-01-20", Person: outsider,
			Events: evs(contract("C1", "220204", "2024-01-01", ""), lease("L1", jilinCity, "2023-03-01", ""), contrib("220202", "2024-01..2024-12", "pension", "medical", "unemployment")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}, QualifiesOn: "2025-02-28"}}},
		{"jilin/counties", "吉市政发〔2015〕5号 （十一）: a villager of 永吉县 renting in the county seat 口前镇 settles there", eligibility.Case{
			Name: "villager rents in the county seat", AsOf: "2024-06-01",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: yongjiVillage},
			Events: evs(lease("L1", yongjiTown, "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"hukou_elsewhere": true, "residence": true}}}},
		{"jilin/counties", "吉市政发〔2015〕5号 （十一） 县政府驻地镇和其他建制镇: moving from one village of the county to another is no move into town", eligibility.Case{
			Name: "villager rents in another village", AsOf: "2024-06-01",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: yongjiVillage},
			Events: evs(lease("L1", yongjiVillage2, "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"residence": false}}}},
		{"jilin/counties", "吉市政发〔2015〕5号 （十一）: a hukou already in the county seat", eligibility.Case{
			Name: "town resident moves within the county", AsOf: "2024-06-01",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: yongjiTown},
			Events: evs(lease("L1", yongjiTown, "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"hukou_elsewhere": false}}}},
		{"jilin/talent", "吉市政发〔2015〕5号 （十三） 凭毕（结）业证书即可办理落户手续", eligibility.Case{
			Name: "bachelor", AsOf: "2024-01-01", Person: outsider, Events: evs(graduated("21", "2010-07-01")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"diploma": true}}}},
		{"jilin/talent", "吉市政发〔2015〕5号 （十三） 大中专和职业院校毕业生: a high-school diploma is not one", eligibility.Case{
			Name: "high school", AsOf: "2024-01-01", Person: outsider, Events: evs(graduated("61", "2010-07-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"diploma": false}}}},

		// --- chifeng/central
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（4） 大专以上学历毕业未满5年: one day before the fifth anniversary", eligibility.Case{
			Name: "graduated 5 years less a day ago", AsOf: "2024-06-30", Person: outsider, Events: evs(graduated("31", "2019-07-01")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"talent": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（4） 毕业未满5年: exactly 5 years is 满5年", eligibility.Case{
			Name: "graduated exactly 5 years ago", AsOf: "2024-07-01", Person: outsider, Events: evs(graduated("31", "2019-07-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"talent": false}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（4） 毕业未满5年: 5 years and 1 day ago", eligibility.Case{
			Name: "graduated 5 years and 1 day ago", AsOf: "2024-07-02", Person: outsider, Events: evs(graduated("31", "2019-07-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"talent": false}, QualifiesOn: "none"}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（1） 投靠类 with 连续租赁时间不得少于一年", eligibility.Case{
			Name: "joins spouse", AsOf: "2024-07-01", Person: outsider,
			Family: []eligibility.CasePerson{{BirthDate: "1991-01-01", Hukou: chifengAddr, MarriedOn: "2020-01-01"}},
			Events: evs(lease("L1", chifengAddr, "2023-07-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"family_reunion": true, "residence": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（1） 投靠类……不受……住房面积等其他条件限制: a lease a day short of a year does not hold up joining a spouse", eligibility.Case{
			Name: "joins spouse, rental short", AsOf: "2024-06-29", Person: outsider,
			Family: []eligibility.CasePerson{{BirthDate: "1991-01-01", Hukou: chifengAddr, MarriedOn: "2020-01-01"}},
			Events: evs(lease("L1", chifengAddr, "2023-07-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"family_reunion": true, "residence": false}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（2）: a Chifeng villager who bought a flat in the central district settles there", eligibility.Case{
			Name: "villager buys flat in 红山区", AsOf: "2024-06-01",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: chifengVillage},
			Events: evs(home("P1", chifengAddr, "2023-01-01")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"hukou_elsewhere": true, "home_purchase": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（1） 投靠类：具有市辖区、旗县区政府驻地镇及其他建制镇区户籍的人员: a spouse registered in a village is no town resident to join", eligibility.Case{
			Name: "joins a spouse registered in a village", AsOf: "2024-07-01", Person: outsider,
			Family: []eligibility.CasePerson{{BirthDate: "1991-01-01", Hukou: chifengVillage, MarriedOn: "2020-01-01"}},
			Events: evs(lease("L1", chifengAddr, "2023-07-01", "")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"family_reunion": false, "residence": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（4） 毕业未满5年: graduated 2020-02-29; 60 months (addMonths clamps) end on 2025-02-28", eligibility.Case{
			Name: "leap-day graduate on 2025-02-28", AsOf: "2025-02-28", Person: outsider,
			Events: evs(graduated("31", "2020-02-29")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"talent": false}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（4） 毕业未满5年: the leap-day graduate on the day before", eligibility.Case{
			Name: "leap-day graduate on 2025-02-27", AsOf: "2025-02-27", Person: outsider,
			Events: evs(graduated("31", "2020-02-29")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"talent": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（4）: 农村学生升学……不受合法稳定住所……的限制: a villager of Chifeng graduating settles without a town home", eligibility.Case{
			Name: "villager graduate without a town home", AsOf: "2024-06-01",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: chifengVillage},
			Events: evs(graduated("31", "2023-07-01")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"hukou_elsewhere": false, "hukou_elsewhere_no_home": true, "talent": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（2） 购房类……不受住房面积、金额限制", eligibility.Case{
			Name: "owns home", AsOf: "2024-07-01", Person: outsider, Events: evs(home("P1", chifengAddr, "2024-06-01")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"home_purchase": true, "residence": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（3） 投资经商类……本自治区内人员", eligibility.Case{
			Name: "business, Inner Mongolia hukou", AsOf: "2024-07-01", Person: eligibility.CasePerson{BirthDate: "1985-01-01", Hukou: innerMongol},
			Events: evs(business("91150400MA0000001X", "150402", "2023-01-01"), lease("L1", chifengAddr, "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"business": true, "region_resident": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）1（3） 本自治区内人员: a Heilongjiang hukou is not", eligibility.Case{
			Name: "business, outside hukou", AsOf: "2024-07-01", Person: outsider,
			Events: evs(business("91150400MA0000001X", "150402", "2023-01-01"), lease("L1", chifengAddr, "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"business": true, "region_resident": false}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）2 在城镇就业、连续居住3年以上", eligibility.Case{
			Name: "three years with work", AsOf: "2024-07-01", Person: outsider,
			Events: evs(contract("C1", "150404", "2022-01-01", ""), lease("L1", chifengAddr, "2021-07-01", "2022-06-30"), lease("L2", "150404001001", "2022-07-10", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"long_residence": true, "working": true}}}},
		{"chifeng/central", "赤政发〔2016〕50号 二（一）2 连续居住3年以上: one day short", eligibility.Case{
			Name: "three years less a day", AsOf: "2024-06-29", Person: outsider,
			Events: evs(contract("C1", "150404", "2022-01-01", ""), lease("L1", chifengAddr, "2021-07-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"long_residence": false, "working": true}, QualifiesOn: "2024-06-30"}}},

		// --- hunan
		{"hunan/under-500k", "湖南 三（一） 城区人口50万以下……有合法稳定住所（含租赁）", eligibility.Case{
			Name: "renting in Zhangjiajie", AsOf: "2024-02-01", Person: outsider, Events: evs(lease("L1", zhangjiajie, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true}}}},
		{"hunan/500k-1m", "湖南 三（一） 合法稳定就业并有合法稳定住所……在当地参加城镇社会保险", eligibility.Case{
			Name: "job, rental, one month", AsOf: "2024-02-20", Person: outsider,
			Events: evs(contract("C1", "430602", "2024-01-01", ""), lease("L1", yueyang, "2024-01-01", ""), contrib("430602", "2024-02..2024-02", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"job": true, "residence": true, "insurance": true}}}},
		{"hunan/500k-1m", "湖南 三（一） 在当地参加城镇社会保险: none yet", eligibility.Case{
			Name: "no insurance", AsOf: "2024-02-20", Person: outsider,
			Events: evs(contract("C1", "430602", "2024-01-01", ""), lease("L1", yueyang, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"insurance": false}}}},
		{"hunan/1m-3m", "湖南 三（二） 合法稳定就业达到一定年限: two jobs with a 10-day break are continuous", eligibility.Case{
			Name: "employment across a short break", AsOf: "2025-01-20", Person: outsider,
			Events: evs(contract("C1", "430405", "2023-01-01", "2023-12-31"), contract("C2", "430407", "2024-01-11", ""),
				lease("L1", hengyang, "2023-01-01", ""), contrib("430405", "2023-01..2024-12", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"job": true, "insurance": true}}}},
		{"hunan/1m-3m", "湖南 三（二） 合法稳定就业达到一定年限: a 40-day break starts again", eligibility.Case{
			Name: "employment broken", AsOf: "2025-01-20", Person: outsider,
			Events: evs(contract("C1", "430405", "2023-01-01", "2023-11-30"), contract("C2", "430407", "2024-01-10", ""),
				lease("L1", hengyang, "2023-01-01", ""), contrib("430405", "2023-01..2024-12", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"job": false}, QualifiesOn: "2026-01-09"}}},
		{"hunan/over-3m", "湖南 三（二） 建立积分落户制度: 20 + 20 + 20 + 15 = 75 points", eligibility.Case{
			Name: "points reached", AsOf: "2024-01-20", Person: outsider,
			Events: evs(contract("C1", "430102", "2022-01-01", ""), home("P1", changsha, "2021-01-01"), contrib("430102", "2022-01..2023-12", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"points": true}}}},
		{"hunan/chang-zhu-tan", "湖南 三（三） 户籍在长沙、株洲、湘潭三市市辖区范围内的居民", eligibility.Case{
			Name: "Zhuzhou resident moving to Changsha", AsOf: "2024-02-20", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: zhuzhou},
			Events: evs(contract("C1", "430102", "2024-01-01", ""), lease("L1", changsha, "2024-01-01", ""), contrib("430102", "2024-01..2024-01", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"hukou_in_czt": true, "hukou_elsewhere": true, "job": true, "residence": true, "insurance": true}}}},
		{"hunan/chang-zhu-tan", "湖南 三（三） 市辖区: 长沙县 is not a district", eligibility.Case{
			Name: "Changsha county resident", AsOf: "2024-02-20", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: changshaXian},
			Events: evs(contract("C1", "430102", "2024-01-01", ""), lease("L1", changsha, "2024-01-01", ""), contrib("430102", "2024-01..2024-01", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_in_czt": false}}}},

		// --- shaoxing/city
		{"shaoxing/city", "绍政发〔2016〕38号 二（二）1 在城镇有合法稳定住所(含租赁)", eligibility.Case{
			Name: "renting", AsOf: "2024-02-01", Person: outsider, Events: evs(lease("L1", shaoxingAddr, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true, "graduate": false}}}},
		{"shaoxing/city", "绍政发〔2016〕38号 二（二）2 无合法稳定住所但已落实工作岗位的大(中)专院校毕业生", eligibility.Case{
			Name: "graduate with a job", AsOf: "2024-02-01", Person: outsider, Events: evs(graduated("31", "2023-07-01"), contract("C1", "330602", "2023-08-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": false, "graduate": true, "job": true}}}},
		{"shaoxing/city", "绍政发〔2016〕38号 二（二）2 已落实工作岗位: a graduate without a job", eligibility.Case{
			Name: "graduate without a job", AsOf: "2024-02-01", Person: outsider, Events: evs(graduated("31", "2023-07-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"graduate": true, "job": false}}}},

		// --- residence permits
		{"residence-permit/jilin", "吉市政发〔2015〕5号 （十五） 到吉林市城市居住半年以上: exactly 6 months", eligibility.Case{
			Name: "six months", AsOf: "2024-07-01", Person: outsider, Events: evs(lease("L1", jilinCity, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"living": true, "basis": true}}}},
		{"residence-permit/jilin", "吉市政发〔2015〕5号 （十五） 居住半年以上: one day short", eligibility.Case{
			Name: "six months less a day", AsOf: "2024-06-29", Person: outsider, Events: evs(lease("L1", jilinCity, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"living": false}, QualifiesOn: "2024-06-30"}}},
		{"residence-permit/heilongjiang", "黑政发〔2014〕25号 二（二） with （十五） 连续就读", eligibility.Case{
			Name: "student renting", AsOf: "2024-09-01", Person: outsider,
			Events: evs(enrolled("哈尔滨工业大学", "230103", "2023-09-01"), lease("L1", harbinAddr, "2023-09-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"living": true, "basis": true}}}},
		{"residence-permit/jilin", "吉市政发〔2015〕5号 （十五） 居住半年以上，符合…连续就读条件之一: a student enrolled for a year, in the school's dormitory", eligibility.Case{
			Name: "student in a dormitory", AsOf: "2024-06-01", Person: outsider,
			Events: evs(enrolled("北华大学", "220202", "2023-09-01")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"basis": true, "living": true}}}},
		{"residence-permit/jilin", "吉市政发〔2015〕5号 （十五） 居住半年以上: a graduation ends the study that showed the residence", eligibility.Case{
			Name: "graduate from a dormitory", AsOf: "2024-06-01", Person: outsider,
			Events: evs(enrolled("某学院", "220202", "2020-09-01"), graduated("21", "2024-01-10")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"basis": false, "living": false}}}},
		{"residence-permit/heilongjiang", "黑政发〔2014〕25号 二（二） + 条例 第二条 稳定就业: a worker on a contract living in the employer's dormitory", eligibility.Case{
			Name: "worker in a dormitory", AsOf: "2024-06-01", Person: outsider,
			Events: evs(contract("C1", "230103", "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"basis": true, "living": true}}}},
		{"residence-permit/heilongjiang", "黑政发〔2014〕25号 二（二） 离开常住户口所在地到其他设区的市: a villager of Harbin moving into Harbin stays in the hukou's city", eligibility.Case{
			Name: "Harbin villager in Harbin", AsOf: "2024-06-01",
			Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: harbinVillage},
			Events: evs(lease("L1", harbinAddr, "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: false, Conditions: map[string]bool{"hukou_elsewhere": false, "living": true}}}},
		{"residence-permit/chifeng", "赤政发〔2016〕50号 三（二） 离开户口所在地市辖区到本市其他市辖区居住的除外", eligibility.Case{
			Name: "moving between Chifeng districts", AsOf: "2024-09-01", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "150403001001"},
			Events: evs(lease("L1", chifengAddr, "2023-09-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_elsewhere": false, "living": true}}}},
		{"residence-permit/chifeng", "赤政发〔2016〕50号 三（二） 到区内其他旗县(市、区)居住半年以上, with （十五）稳定就业", eligibility.Case{
			Name: "banner resident working in the districts", AsOf: "2024-09-01", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "150429100200"},
			Events: evs(lease("L1", chifengAddr, "2023-09-01", ""), contract("C1", "150402", "2023-09-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"hukou_elsewhere": true, "living": true, "basis": true}}}},
		{"residence-permit/hunan", "湖南 四（二） with 居住证暂行条例 第二条: 离开常住户口所在地", eligibility.Case{
			Name: "registered in Changsha already", AsOf: "2024-09-01", Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: changsha},
			Events: evs(lease("L1", changsha, "2023-01-01", "")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"hukou_elsewhere": false}}}},
		{"residence-permit/shaoxing", "绍政发〔2016〕38号 二（三） 以有合法稳定就业……为基本条件", eligibility.Case{
			Name: "worker", AsOf: "2024-09-01", Person: outsider, Events: evs(contract("C1", "330602", "2024-01-01", ""), lease("L1", shaoxingAddr, "2024-01-01", "")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"living": true, "basis": true}}}},
		{"residence-permit/hunan", "湖南 四（二） with 居住证暂行条例 第二条: no basis", eligibility.Case{
			Name: "lived but lease ended", AsOf: "2024-09-01", Person: outsider, Events: evs(lease("L1", changsha, "2023-01-01", ""), leaseEnded("L1", "2024-08-01")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"living": false, "basis": false}}}},

		// --- registered ahead: a lease or contract sent before it starts keeps
		// running to its registered end when predicting qualifies_on, but
		// never meets a condition before its start.
		{"heilongjiang/nine-cities", hlj9 + " 在同一地址租住半年以上: a renewal at the same address registered ahead is foreseen", eligibility.Case{
			Name: "lease renewal registered ahead, before", AsOf: "2024-06-25", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2024-01-02", "2024-06-30"),
				registeredOn("2024-06-20", lease("L2", mudanjiangA, "2024-07-01", "2025-06-30")), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": true, "residence": false, "insurance": true}, QualifiesOn: "2024-07-01"}}},
		{"heilongjiang/nine-cities", hlj9 + " 在同一地址租住半年以上: the renewal registered ahead continues the count", eligibility.Case{
			Name: "lease renewal registered ahead, after", AsOf: "2024-07-01", Person: outsider,
			Events: evs(contract("C1", "231002", "2023-01-01", ""), lease("L1", mudanjiangA, "2024-01-02", "2024-06-30"),
				registeredOn("2024-06-20", lease("L2", mudanjiangA, "2024-07-01", "2025-06-30")), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Eligible: true, Conditions: map[string]bool{"residence": true}}}},
		{"heilongjiang/nine-cities", hlj9 + " 签订半年以上劳动合同: a renewal registered ahead keeps the contract in force", eligibility.Case{
			Name: "contract renewal registered ahead", AsOf: "2024-06-25", Person: outsider,
			Events: evs(contract("C1", "231002", "2024-01-01", "2024-06-30"), registeredOn("2024-06-20", contract("C2", "231002", "2024-07-01", "2025-06-30")),
				lease("L1", mudanjiangA, "2024-01-15", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": true, "residence": false, "insurance": true}, QualifiesOn: "2024-07-14"}}},
		{"heilongjiang/nine-cities", hlj9 + " 签订半年以上劳动合同: a contract registered ahead is not in force before its start", eligibility.Case{
			Name: "contract registered ahead", AsOf: "2024-06-25", Person: outsider,
			Events: evs(registeredOn("2024-06-20", contract("C1", "231002", "2024-07-01", "2025-06-30")),
				lease("L1", mudanjiangA, "2023-01-01", ""), contrib("231002", "2023-01..2024-06", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"contract": false, "residence": true, "insurance": true}, QualifiesOn: "2024-07-01"}}},
		{"hunan/1m-3m", "湖南 三（二） 合法稳定就业达到一定年限: the next job registered ahead continues employment", eligibility.Case{
			Name: "employment continued by a contract registered ahead", AsOf: "2024-12-25", Person: outsider,
			Events: evs(contract("C1", "430405", "2023-02-01", "2024-12-31"), registeredOn("2024-12-20", contract("C2", "430407", "2025-01-01", "")),
				lease("L1", hengyang, "2023-01-01", ""), contrib("430405", "2023-01..2024-12", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"job": false, "residence": true, "insurance": true}, QualifiesOn: "2025-01-31"}}},
		{"jilin/city", "吉市政发〔2015〕5号 （十二） 有合法稳定职业: between jobs, the next one registered ahead is not a job today", eligibility.Case{
			Name: "between jobs", AsOf: "2024-06-20", Person: outsider,
			Events: evs(contract("C1", "220204", "2023-01-01", "2024-06-10"), registeredOn("2024-06-15", contract("C2", "220204", "2024-07-01", "")),
				lease("L1", jilinCity, "2022-01-01", ""), contrib("220202", "2023-06..2024-05", "pension", "medical", "unemployment")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"job": false, "residence": true, "insurance": true}, QualifiesOn: "2024-07-01"}}},
		{"heilongjiang/harbin", hljHRB + " 合理设置积分: employment continued by a contract registered ahead keeps scoring", eligibility.Case{
			Name: "points with a contract registered ahead", AsOf: "2023-12-30", Person: outsider,
			Events: evs(contract("C1", "230103", "2021-01-01", "2023-12-30"), registeredOn("2023-12-20", contract("C2", "230103", "2023-12-31", "")),
				lease("L1", harbinAddr, "2021-01-01", ""), contrib("230103", "2021-01..2023-12", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"points": false}, QualifiesOn: "2023-12-31"}}},
		{"heilongjiang/harbin", hljHRB + " 合理设置积分: the threshold falls in a break between jobs; the points come when the next job starts", eligibility.Case{
			Name: "points reached in a break between jobs", AsOf: "2022-12-20", Person: outsider,
			Events: evs(contract("C1", "230103", "2020-01-01", "2022-12-30"), registeredOn("2022-12-15", contract("C2", "230103", "2023-01-20", "")),
				lease("L1", harbinAddr, "2020-01-01", ""), contrib("230103", "2020-01..2022-12", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"points": false}, QualifiesOn: "2023-01-20"}}},
		{"heilongjiang/harbin", hljHRB + " 合理设置积分: on a day in the break the employment scores nothing", eligibility.Case{
			Name: "points in a break between jobs", AsOf: "2023-01-10", Person: outsider,
			Events: evs(contract("C1", "230103", "2020-01-01", "2022-12-30"), registeredOn("2022-12-15", contract("C2", "230103", "2023-01-20", "")),
				lease("L1", harbinAddr, "2020-01-01", ""), contrib("230103", "2020-01..2022-12", "pension")),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"points": false}, QualifiesOn: "2023-01-20"}}},
		{"shaoxing/city", "绍政发〔2016〕38号 二（二）1 在城镇有合法稳定住所(含租赁): a lease registered ahead is no residence yet", eligibility.Case{
			Name: "lease registered ahead", AsOf: "2024-02-25", Person: outsider,
			Events: evs(registeredOn("2024-02-20", lease("L1", shaoxingAddr, "2024-03-01", ""))),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"residence": false}, QualifiesOn: "2024-03-01"}}},
		{"residence-permit/heilongjiang", "黑政发〔2014〕25号 二（二） 居住半年以上: moving house with the next lease registered ahead", eligibility.Case{
			Name: "between homes, next lease registered ahead", AsOf: "2024-08-25", Person: outsider,
			Events: evs(lease("L1", harbinAddr, "2023-09-01", ""), leaseEnded("L1", "2024-08-20"),
				registeredOn("2024-08-01", lease("L2", harbinAddr, "2024-09-01", ""))),
			Expect: eligibility.CaseExpect{Conditions: map[string]bool{"living": false, "basis": false}, QualifiesOn: "2024-09-01"}}},
	}
}

// TestClauses runs the hand-worked table: every clause of every policy,
// each case citing the seed sentence it checks.
func TestClauses(t *testing.T) {
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, cc := range clauseCases() {
		p, ok := cat.Policy(cc.policy)
		if !ok {
			t.Fatalf("no policy %s", cc.policy)
		}
		r := eligibility.RunCase(p, cc.c)
		t.Run(cc.policy+"/"+cc.c.Name, func(t *testing.T) {
			if !r.Passed {
				t.Errorf("checking %q:\n  %s\n  decision: %+v", cc.seed, strings.Join(r.Problems, "\n  "), r.Decision.Conditions)
			}
		})
		for id := range cc.c.Expect.Conditions {
			covered[cc.policy+"/"+id] = true
		}
		// An eligible person exercises every clause they meet.
		for _, cr := range r.Decision.Conditions {
			if r.Passed && r.Decision.Eligible && cr.Met {
				covered[cc.policy+"/"+cr.ID] = true
			}
		}
	}
	for _, s := range cat.Policies() {
		p, _ := cat.Policy(s.ID)
		for _, cl := range p.Clauses {
			if !covered[s.ID+"/"+cl.ID] {
				t.Errorf("clause %s/%s has no hand-worked case", s.ID, cl.ID)
			}
		}
	}
}
