package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas/region"
)

// TestImportedRegionTable installs an official NBS table with `pophub
// regions import` into a data directory and checks that a hub started on
// it shows the official class in golden records.
func TestImportedRegionTable(t *testing.T) {
	t.Cleanup(func() { region.SetDefault(region.Builtin()) })
	dir := t.TempDir()
	csv := filepath.Join(dir, "nbs.csv")
	if err := os.WriteFile(csv, []byte("code,class,name\n230102001001,112,省报社社区居委会\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var out bytes.Buffer
	cmd := rootCommand()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"regions", "import", "--file", csv, "--out", filepath.Join(data, regionsFileName)})
	if err := cmd.Execute(); err != nil || !strings.Contains(out.String(), "1 replace derived entries") {
		t.Fatalf("regions import: %v, %q", err, out.String())
	}
	// A bad table is refused with the line named.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("230102001001,999,x\n"), 0o644)
	cmd = rootCommand()
	cmd.SetArgs([]string{"regions", "import", "--file", bad, "--out", filepath.Join(dir, "x.gz")})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "line 1: classification code") {
		t.Fatalf("bad table: %v", err)
	}

	m := &Main{Config: Config{Embedded: true, DataDir: data, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Partitions: 2, NATSSync: time.Second}, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	msgs := scenario(t)
	produceAll(t, m.Brokers(), msgs)
	waitCaughtUp(t, m, len(msgs))
	rec, code := getRecord(t, m, personID(t, 2))
	if code != 200 || rec.Hukou == nil {
		t.Fatalf("GET person: HTTP %d, %+v", code, rec.Hukou)
	}
	d, _ := region.Lookup(rec.Hukou.AddressCode)
	if rec.Hukou.AddressCode == "230102001001" && (rec.Hukou.ClassCode != "112" || rec.Hukou.UrbanRural != "urban") {
		t.Fatalf("hukou %+v: want the imported class 112", rec.Hukou)
	}
	if rec.Hukou.AddressCode != "230102001001" && d.Derived != (rec.Hukou.ClassCode == "") {
		t.Fatalf("hukou %+v does not follow the table", rec.Hukou)
	}
	if got, _ := region.Lookup("230102001001"); got.Class != "112" {
		t.Fatalf("the hub did not load the installed table: %+v", got)
	}
}

// TestRegionsShow checks what `pophub regions show` prints for a code in
// the table and what it says of codes it cannot show.
func TestRegionsShow(t *testing.T) {
	tests := []struct {
		code    string
		want    string // in the output, or in the error when wantErr
		wantErr bool
	}{
		{code: "230102", want: "230102"},
		{code: "12345", want: "not a 2-, 4-, 6-, 9- or 12-digit division code", wantErr: true},
		{code: "23010x", want: "a character other than a digit", wantErr: true},
		{code: "999999", want: "99 is not a province code", wantErr: true},
		{code: "239999", want: "239999 is not in the region table", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			var out bytes.Buffer
			cmd := rootCommand()
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs([]string{"regions", "show", tt.code})
			err := cmd.Execute()
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("regions show %s: error %v, want one saying %q", tt.code, err, tt.want)
				}
				return
			}
			if err != nil || !strings.Contains(out.String(), tt.want) || !strings.Contains(out.String(), "direct children") {
				t.Fatalf("regions show %s: %v, %q", tt.code, err, out.String())
			}
		})
	}
}
