package openfire

import (
	"context"
	"strings"
	"testing"
)

func TestScriptErrors(t *testing.T) {
	full := build(t, 40, passwordKey).script()
	lines := strings.Split(full, "\n")
	// The line of the first INSERT INTO OFUSER, cut in the middle.
	n := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "INSERT INTO OFUSER ") {
			n = i
			break
		}
	}
	truncated := strings.Join(lines[:n], "\n") + "\n" + lines[n][:len(lines[n])/2]
	for _, tc := range []struct {
		name, script, want string
	}{
		{"truncated", truncated, "line " + strconvItoa(n+1) + ": INSERT INTO ofuser: "},
		{"unterminated string", "CREATE MEMORY TABLE PUBLIC.T(A VARCHAR(10))\nINSERT INTO T VALUES('abc)", "line 2: INSERT INTO t: unterminated string"},
		{"insert before create", "INSERT INTO T VALUES(1)", "line 1: INSERT INTO t before its CREATE TABLE"},
		{"too few values", "CREATE MEMORY TABLE T(A INTEGER,B INTEGER)\nINSERT INTO T VALUES(1)", "line 2: INSERT INTO t: 1 values for 2 columns"},
		{"bad literal", "CREATE MEMORY TABLE T(A INTEGER)\nINSERT INTO T VALUES(foo)", "line 2: INSERT INTO t: unexpected"},
		{"bad number", "CREATE MEMORY TABLE T(A INTEGER)\nINSERT INTO T VALUES(1.2.3)", "bad number"},
		{"bad escape", "CREATE MEMORY TABLE T(A VARCHAR(1))\nINSERT INTO T VALUES('\\uZZZZ')", "bad \\u escape"},
		{"trailing junk", "CREATE MEMORY TABLE T(A INTEGER)\nINSERT INTO T VALUES(1) junk", "after the values"},
		{"unterminated create", "CREATE MEMORY TABLE T(A INTEGER", "line 1: CREATE TABLE t: unterminated column list"},
		{"twice", "CREATE MEMORY TABLE T(A INTEGER)\nCREATE MEMORY TABLE T(A INTEGER)", "line 2: table t created twice"},
		{"unknown column", "CREATE MEMORY TABLE T(A INTEGER)\nINSERT INTO T(B) VALUES(1)", "no column b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseScript(strings.NewReader(tc.script))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseScript = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A script cut between statements parses; the missing tables are
	// then named by the reader.
	p := t.TempDir() + "/openfire.script"
	if err := writeFile(p, strings.Join(lines[:6], "\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(context.Background(), Options{HSQLDBScript: p}); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("Read of a cut script = %v, want a missing table", err)
	}
}

func TestScriptLiterals(t *testing.T) {
	s, err := parseScript(strings.NewReader("SET SCHEMA PUBLIC\r\n" +
		`CREATE CACHED TABLE PUBLIC."Odd ""Name"""(A VARCHAR(10),"b" INTEGER,C DECIMAL(10,2),D BOOLEAN,E VARBINARY(4),CONSTRAINT X CHECK(A <> 'x,)'))` + "\n" +
		`INSERT INTO "Odd ""Name""" VALUES('it''s \u00e9\ud83d\ude00 \u005cu0041 C:\dir',-12,1.5E+3,TRUE,X'0aff'),(NULL,0,.5,FALSE,NULL);` + "\n" +
		`INSERT INTO PUBLIC."Odd ""Name"""("b",A) VALUES(7,'ünïcode')` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	tb := s.tables[`odd "name"`]
	if tb == nil || strings.Join(tb.cols, ",") != "a,b,c,d,e" {
		t.Fatalf("tables = %+v", s.tables)
	}
	var got []string
	for _, row := range tb.rows {
		var vs []string
		for _, v := range row {
			if v == nil {
				vs = append(vs, "NULL")
			} else {
				vs = append(vs, *v)
			}
		}
		got = append(got, strings.Join(vs, "|"))
	}
	want := []string{`it's é😀 \u0041 C:\dir|-12|1.5E+3|true|0aff`, "NULL|0|.5|false|NULL", "ünïcode|7|NULL|NULL|NULL"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzParseScript: any input gives rows or an error, never a panic.
func FuzzParseScript(f *testing.F) {
	f.Add(build(f, 40, passwordKey).script())
	f.Add("CREATE MEMORY TABLE T(A VARCHAR(10))\nINSERT INTO T VALUES('a''b\\u00e9')")
	f.Add("CREATE TABLE T(A INTEGER,CONSTRAINT P PRIMARY KEY(A))\nINSERT INTO T(A) VALUES(1),(2);")
	f.Add("INSERT INTO")
	f.Fuzz(func(t *testing.T, script string) {
		s, err := parseScript(strings.NewReader(script))
		if err != nil {
			return
		}
		for _, tb := range s.tables {
			for _, row := range tb.rows {
				if len(row) != len(tb.cols) {
					t.Fatalf("row of %d values for %d columns", len(row), len(tb.cols))
				}
			}
		}
	})
}

func TestScriptRunning(t *testing.T) {
	p := build(t, 40, passwordKey).writeScript(t)
	if err := writeFile(strings.TrimSuffix(p, ".script")+".log", "INSERT INTO OFUSER VALUES('x')\n"); err != nil {
		t.Fatal(err)
	}
	readErr(t, Options{HSQLDBScript: p, Domain: ofDomain}, "openfire.log is not empty", "stop Openfire")
	if err := writeFile(strings.TrimSuffix(p, ".script")+".log", ""); err != nil {
		t.Fatal(err)
	}
	read(t, Options{HSQLDBScript: p, SecurityXML: securityXML(t, "pbkdf2", blowfishSalt), Domain: ofDomain})

	cached := strings.Replace(build(t, 40, passwordKey).script(), "CREATE MEMORY TABLE PUBLIC.OFROSTER(", "CREATE CACHED TABLE PUBLIC.OFROSTER(", 1)
	p = t.TempDir() + "/openfire.script"
	if err := writeFile(p, cached); err != nil {
		t.Fatal(err)
	}
	readErr(t, Options{HSQLDBScript: p, SecurityXML: securityXML(t, "pbkdf2", blowfishSalt), Domain: ofDomain}, "ofroster is an HSQLDB CACHED table")
}
