package eligibility

import (
	"testing"
	"time"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/schemas"
)

// TestCorrectedEducationCounts: a graduation or an enrolment corrected by
// a new version of its department record (a level mistyped) counts as the
// record shows it, in either arrival order: a diploma typed as 本科毕业
// and corrected to 本科肄业 is no diploma.
func TestCorrectedEducationCounts(t *testing.T) {
	who := storetest.ValidID(6)
	at := time.Date(2016, 7, 1, 9, 0, 0, 0, schemas.CST())
	grad := func(v int64, level string) hub.Input {
		return storetest.Event(t, schemas.EducationGraduated, who, publisher.EventID(schemas.Education, "XJ1\x1f毕业", v), at,
			schemas.EducationGraduatedData{Institution: "黑龙江大学", Level: level, Date: "2016-07-01", CertificateNo: "C1"})
	}
	enrol := func(v int64, level string) hub.Input {
		return storetest.Event(t, schemas.EducationEnrolled, who, publisher.EventID(schemas.Education, "XJ1\x1f入学", v), at,
			schemas.EducationEnrolledData{Institution: "黑龙江大学", Level: level, Region: "230103", Start: "2012-09-01"})
	}
	for _, arrival := range [][]hub.Input{
		{grad(1, "21"), enrol(1, "20"), grad(2, "23"), enrol(2, "30")},
		{grad(2, "23"), enrol(2, "30"), grad(1, "21"), enrol(1, "20")},
	} {
		t.Run(ids(arrival), func(t *testing.T) {
			out := merge.Batch(nil, arrival, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			rec := out.States[who].Record()
			if rec.Education == nil || rec.Education.HighestLevel != "23" || len(rec.Education.Enrolments) != 1 {
				t.Fatalf("the record's education %+v, want the corrections", rec.Education)
			}
			var history []hub.Change
			for _, e := range out.History {
				history = append(history, e.Change)
			}
			f := gather(&rec, history, at.AddDate(1, 0, 0))
			if len(f.grads) != 1 || f.grads[0].level != "23" {
				t.Errorf("graduations %+v, want only the corrected one (23)", f.grads)
			}
			if len(f.enrols) != 1 || f.enrols[0].level != "30" {
				t.Errorf("enrolments %+v, want only the corrected one (30)", f.enrols)
			}
		})
	}
}
