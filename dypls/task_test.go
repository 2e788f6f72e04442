package dypls

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/tasks"
)

// Every API parameter of a job reaches the call: the two structs name the
// same fields.
func TestUpdateOfCopiesEveryField(t *testing.T) {
	var u tasks.Update
	for _, f := range tasks.Fields {
		*tasks.FieldValue(&u, f) = "v-" + f
	}
	got := reflect.ValueOf(UpdateOf(u))
	if got.NumField() != len(tasks.Fields) {
		t.Fatalf("dypls.Update has %d fields, tasks.Fields %d", got.NumField(), len(tasks.Fields))
	}
	for _, f := range tasks.Fields {
		if v := got.FieldByName(f).String(); v != "v-"+f {
			t.Errorf("%s = %q", f, v)
		}
	}
}

// The reasons of a tasks.ValidationError mask numbers as Mask does (tasks
// keeps its own copy of the rules, since it cannot import this package).
func TestTasksMasksAsMaskDoes(t *testing.T) {
	for _, v := range []string{"+86 138-0013-8000", "138 0013 8000", "(010) 8765-4321", "0086 138 0013 8000",
		"13812345678", "8613812345678", "2030-09-05 12:00:00", "192.168.100.101", "1.2345678901",
		"138.0013.8000 139 0013 9000", "0000000000 0000000",
		"１３８００１３８０００", "138\u00a00013\u30008000", "138\u20130013\u20148000", "138/0013/8000",
		"138 - 0013 - 8000", "138.00138000", "2026-12-01 10:00:00", "1000000768790001"} {
		u := tasks.Update{PoolKey: "FC1", SubsId: "1", PhoneNoX: "17000000000", OperateType: v}
		err := u.Validate(time.Now())
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(Mask(v))) {
			t.Errorf("OperateType %q: %v, want it quoted as %q", v, err, Mask(v))
		}
	}
}
