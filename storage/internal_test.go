package storage

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	cases := []struct {
		name    string
		fsys    fstest.MapFS
		want    []string // labels; nil with wantErr
		wantErr string
	}{
		{"ordered", fstest.MapFS{"0002_b.sql": file("B"), "0001_a.sql": file("A")}, []string{"0001_a", "0002_b"}, ""},
		{"gap", fstest.MapFS{"0001_a.sql": file(""), "0003_c.sql": file("")}, nil, "expected number 0002"},
		{"repeat", fstest.MapFS{"0001_a.sql": file(""), "0001_b.sql": file("")}, nil, "expected number 0002"},
		{"starts at two", fstest.MapFS{"0002_a.sql": file("")}, nil, "expected number 0001"},
		{"bad name", fstest.MapFS{"0001_a.sql": file(""), "2_b.sql": file("")}, nil, "not named NNNN_name.sql"},
		{"stray file", fstest.MapFS{"0001_a.sql": file(""), "README": file("")}, nil, "not named NNNN_name.sql"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			migs, err := loadMigrations(c.fsys)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range migs {
				got = append(got, m.label())
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("labels = %q, want %q", got, c.want)
			}
		})
	}
}

// TestEmbeddedMigrations checks the shipped files load and that the dialects
// leave no unknown {{TOKEN}} behind.
func TestEmbeddedMigrations(t *testing.T) {
	migs, err := embeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 {
		t.Fatal("no migrations embedded")
	}
	for _, driver := range []string{DriverSQLite, DriverPostgres} {
		d, err := dialectFor(driver)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range migs {
			if s := d.schema.Replace(m.sql); strings.Contains(s, "{{") {
				t.Errorf("%s on %s: unreplaced token in\n%s", m.label(), driver, s)
			}
		}
	}
}

func TestRedactDSN(t *testing.T) {
	cases := []struct {
		dsn, want, secret string
	}{
		{"postgres://u:pw@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable", "pw"},
		{"postgresql://u:p@w@h/db", "postgresql://u:xxxxx@h/db", "p@w"},
		{"postgres://u@h/db", "postgres://u@h/db", ""},
		{"postgres://h/db?password=pw&sslmode=disable#f", "postgres://h/db?password=xxxxx&sslmode=disable#f", "pw"},
		{"postgres://u:pw@h", "postgres://u:xxxxx@h", "pw"},
		{"host=h password=pw dbname=d", "host=h password=xxxxx dbname=d", "pw"},
		{"host=h password = 'p w\\' x' dbname=d", "host=h password = xxxxx dbname=d", "p w\\' x"},
		{"host=h password='pw", "host=h password=xxxxx", "'pw"},
		{"host=h password=pw junk", "host=h password=xxxxx xxxxx", "pw"},
		{"  host=h  ", "  host=h  ", ""},
		{"", "", ""},
	}
	for _, c := range cases {
		got, secret := redactDSN(c.dsn)
		if got != c.want || secret != c.secret {
			t.Errorf("redactDSN(%q) = %q, %q; want %q, %q", c.dsn, got, secret, c.want, c.secret)
		}
	}
}

// FuzzRedactDSN checks that redaction never panics and removes the password
// it reports (at least one occurrence of it, counting only text that is not
// the xxxxx put in its place).
func FuzzRedactDSN(f *testing.F) {
	f.Add("host=h password=secretpw dbname=d")
	f.Add("postgres://u:secretpw@h/db?password=secretpw")
	f.Add("host=h password='secret pw")
	f.Add("host=h password=a\\ b junk 'x")
	f.Fuzz(func(t *testing.T, dsn string) {
		red, secret := redactDSN(dsn)
		if secret == "" || strings.Contains(secret, "\x00") {
			return
		}
		rest := strings.ReplaceAll(red, "xxxxx", "\x00")
		if strings.Count(rest, secret) >= strings.Count(dsn, secret) {
			t.Errorf("redactDSN(%q) = %q did not remove the password %q", dsn, red, secret)
		}
	})
}
