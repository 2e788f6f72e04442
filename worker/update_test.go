package worker

import (
	"reflect"
	"testing"

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
