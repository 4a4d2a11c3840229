// judges: the verdicts GitOps tools give a Kubernetes object, computed by their own code.
//
//	judges kstatus          objects (JSON, one per line) on stdin; prints the kstatus result of each
//	judges argocd SCRIPT    objects (JSON, one per line) on stdin; prints the health SCRIPT returns
//
// kstatus is the library behind Flux's health checks, `kubectl wait` style waiting in cli-utils and
// kpt (sigs.k8s.io/cli-utils/pkg/kstatus/status). The Argo CD runtime is gopher-lua, set up as Argo CD
// runs a health script from argocd-cm: no standard libraries but package, base and table, one second
// of time, the object as the global `obj`, and a table with `status` and `message` returned.
// Each verdict is one line of JSON: {"status": "...", "message": "..."}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] == "argocd" && len(os.Args) != 3) {
		fmt.Fprintln(os.Stderr, "usage: judges kstatus | judges argocd SCRIPT")
		os.Exit(2)
	}
	var judge func(map[string]interface{}) (verdict, error)
	switch os.Args[1] {
	case "kstatus":
		judge = kstatus
	case "argocd":
		script, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		judge = func(obj map[string]interface{}) (verdict, error) { return argocd(obj, string(script)) }
	default:
		fmt.Fprintf(os.Stderr, "unknown judge %q\n", os.Args[1])
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		// As Kubernetes clients decode objects: whole numbers become int64.
		var u unstructured.Unstructured
		if err := u.UnmarshalJSON(in.Bytes()); err != nil {
			fmt.Fprintln(os.Stderr, "not a Kubernetes object:", err)
			os.Exit(2)
		}
		v, err := judge(u.Object)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := out.Encode(v); err != nil {
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func kstatus(obj map[string]interface{}) (verdict, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return verdict{}, err
	}
	return verdict{Status: res.Status.String(), Message: res.Message}, nil
}

func argocd(obj map[string]interface{}, script string) (verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return verdict{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return verdict{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	v := verdict{Status: lua.LVAsString(ret.RawGetString("status")), Message: lua.LVAsString(ret.RawGetString("message"))}
	switch v.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
		return v, nil
	}
	// What Argo CD shows for a status it does not know.
	return verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
}

// toLua converts decoded JSON as Argo CD converts an object: numbers, strings, booleans, tables.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
