package schemas

import (
	"encoding/json"
	"testing"
	"time"
)

// TestNotificationAppendJSON checks the fast encoder writes exactly what
// encoding/json writes.
func TestNotificationAppendJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 8, 30, 0, 123456000, time.FixedZone("", 8*3600))
	tests := []struct {
		name string
		n    Notification
	}{
		{"change", Notification{ChangeID: "ab12.hukou", CitizenID: "230102199001011237", Version: 7, Section: "hukou",
			EventID: "ps-1", EventType: HukouRegistered, Source: PublicSecurity, Time: at, AppliedAt: at.UTC()}},
		{"migration", Notification{ChangeID: "ab12.migration", CitizenID: "230102199001011237", Version: 8, Section: KindMigration,
			EventID: "ps-2", EventType: HukouMigrated, Source: PublicSecurity, Time: at, AppliedAt: at,
			FromAddressCode: "230102001001", ToAddressCode: "230602013004", Reason: "employment"}},
		{"death", Notification{ChangeID: "cd.death", CitizenID: "230102199001011237", Version: 9, Section: KindDeath,
			EventID: "h-1", EventType: DeathCertified, Source: Health, Time: at, AppliedAt: at, DateOfDeath: "2026-02-28"}},
		{"event id needing escapes", Notification{ChangeID: "x", EventID: "id \"quoted\" <b> 办理\n", Time: at, AppliedAt: at}},
		{"every string needing escapes", Notification{ChangeID: "a<b", CitizenID: "x\"y", Section: "s&", EventType: "t\u2028",
			Source: "src\\", FromAddressCode: "<", ToAddressCode: ">", Reason: "r\x01", DateOfDeath: "办理\xff", Time: at, AppliedAt: at}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.n.AppendJSON(nil); string(got) != string(want) {
				t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
			}
		})
	}
}
