package dyplsim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Binding is one AXB binding as the control plane shows it. JSON field
// names are the API's own.
type Binding struct {
	SubsId          string `json:"SubsId"`
	PoolKey         string `json:"PoolKey"`
	PhoneNoA        string `json:"PhoneNoA"`
	PhoneNoB        string `json:"PhoneNoB"`
	PhoneNoX        string `json:"PhoneNoX"`
	ExpireDate      string `json:"ExpireDate"` // DateLayout, Beijing time
	GroupId         string `json:"GroupId"`
	CallRestrict    string `json:"CallRestrict"`
	OutId           string `json:"OutId"`
	CallDisplayType int    `json:"CallDisplayType"`
	NeedRecord      bool   `json:"NeedRecord"`
	ASRStatus       bool   `json:"ASRStatus"`
	ASRModelId      string `json:"ASRModelId"`
	RingConfig      string `json:"RingConfig,omitempty"` // the last RingConfig set, as sent
	Extension       string `json:"Extension,omitempty"`  // extension number, shown by QuerySubscriptionDetail when set
	Status          int    `json:"Status"`               // 1 in effect, 0 expired; computed, ignored on input
	GmtCreate       string `json:"GmtCreate"`
}

// binding is a stored Binding plus its parsed expiry.
type binding struct {
	Binding
	expire int64 // Unix seconds
}

func (b *binding) live(now int64) bool { return b.expire > now }

// view returns the Binding with Status computed for now.
func (b *binding) view(now int64) Binding {
	v := b.Binding
	v.Status = 0
	if b.live(now) {
		v.Status = 1
	}
	return v
}

// pool is a number pool: the X numbers an account owns under a PoolKey.
type pool struct {
	key string
	// prefix, if set, makes the pool own every 11-digit number starting
	// with it (the default pool owns "170" + 8 digits).
	prefix  string
	numbers map[string]struct{}
	list    []string // numbers, in insertion order, for picking
}

func (p *pool) owns(x string) bool {
	if p.prefix != "" && len(x) == 11 && strings.HasPrefix(x, p.prefix) && allDigits(x) {
		return true
	}
	_, ok := p.numbers[x]
	return ok
}

func (p *pool) add(x string) {
	if p.owns(x) {
		return
	}
	p.numbers[x] = struct{}{}
	p.list = append(p.list, x)
}

// pick returns a random X number of the pool, or "" if it has none.
func (p *pool) pick(rng *rand.Rand) string {
	if p.prefix != "" {
		n := 11 - len(p.prefix)
		b := make([]byte, 0, 11)
		b = append(b, p.prefix...)
		return string(appendPadded(b, rng.Int64N(pow10(n)), n))
	}
	if len(p.list) == 0 {
		return ""
	}
	return p.list[rng.IntN(len(p.list))]
}

func pow10(n int) int64 {
	v := int64(1)
	for range n {
		v *= 10
	}
	return v
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(dst []byte, v int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// xKey names the routing slot "phone calls X": in AXB a phone number may
// take part in only one live binding per X number.
type xKey struct{ x, phone string }

// state is the business state. One mutex guards it; every operation under
// it is a few map look-ups.
type state struct {
	mu       sync.Mutex
	bindings map[string]*binding
	pools    map[string]*pool
	holders  map[xKey]string // -> SubsId
	rng      *rand.Rand
}

func (st *state) init(seed uint64) {
	st.bindings = make(map[string]*binding)
	st.pools = map[string]*pool{
		DefaultPoolKey: {key: DefaultPoolKey, prefix: "170", numbers: map[string]struct{}{}},
	}
	st.holders = make(map[xKey]string)
	st.rng = rand.New(rand.NewPCG(seed, 0x5eed))
}

// seedBindings creates n sample bindings; see the package documentation.
func (st *state) seedBindings(n int, now time.Time) {
	nowStr := now.In(beijing).Format(DateLayout)
	exp := now.Add(365 * 24 * time.Hour).Truncate(time.Second)
	expStr := exp.In(beijing).Format(DateLayout)
	for i := 1; i <= n; i++ {
		b := &binding{Binding: SeedBinding(i), expire: exp.Unix()}
		b.ExpireDate = expStr
		b.GmtCreate = nowStr
		st.bindings[b.SubsId] = b
		st.index(b)
	}
}

// SeedBinding returns the i-th (1-based) sample binding created by
// Config.Seed, without ExpireDate, GmtCreate and Status (set at creation:
// one year after, and at, that time).
func SeedBinding(i int) Binding {
	idx := int64(i - 1)
	return Binding{
		SubsId:          strconv.FormatInt(1_000_000_000_000_000+int64(i), 10),
		PoolKey:         DefaultPoolKey,
		PhoneNoA:        string(appendPadded([]byte("138"), idx, 8)),
		PhoneNoB:        string(appendPadded([]byte("139"), idx, 8)),
		PhoneNoX:        string(appendPadded([]byte("170"), idx, 8)),
		CallDisplayType: 1,
	}
}

func (st *state) index(b *binding) {
	for _, p := range [2]string{b.PhoneNoA, b.PhoneNoB} {
		if p != "" {
			st.holders[xKey{b.PhoneNoX, p}] = b.SubsId
		}
	}
}

func (st *state) unindex(b *binding) {
	for _, p := range [2]string{b.PhoneNoA, b.PhoneNoB} {
		k := xKey{b.PhoneNoX, p}
		if p != "" && st.holders[k] == b.SubsId {
			delete(st.holders, k)
		}
	}
}

// conflict reports whether phone is already bound with x in a live binding
// other than self.
func (st *state) conflict(x, phone, self string, now int64) bool {
	h, ok := st.holders[xKey{x, phone}]
	if !ok || h == self {
		return false
	}
	o := st.bindings[h]
	return o != nil && o.live(now) && o.PhoneNoX == x && (o.PhoneNoA == phone || o.PhoneNoB == phone)
}

// poolOwning returns the pool that owns x, preferring the default pool.
func (st *state) poolOwning(x string) *pool {
	if p := st.pools[DefaultPoolKey]; p.owns(x) {
		return p
	}
	for _, p := range st.pools {
		if p.owns(x) {
			return p
		}
	}
	return nil
}

// newSubsID returns an unused 16-digit SubsId starting with 2 (sample
// bindings start with 1).
func (st *state) newSubsID() string {
	for {
		id := strconv.FormatInt(2_000_000_000_000_000+st.rng.Int64N(1_000_000_000_000_000), 10)
		if _, taken := st.bindings[id]; !taken {
			return id
		}
	}
}

// put creates or replaces a binding, registering its pool and X number.
func (st *state) put(in Binding, now time.Time) (Binding, error) {
	if in.ExpireDate == "" {
		in.ExpireDate = now.Add(365 * 24 * time.Hour).In(beijing).Format(DateLayout)
	}
	exp, err := time.ParseInLocation(DateLayout, in.ExpireDate, beijing)
	if err != nil {
		return Binding{}, fmt.Errorf("ExpireDate %q: want layout %q", in.ExpireDate, DateLayout)
	}
	if in.GmtCreate == "" {
		in.GmtCreate = now.In(beijing).Format(DateLayout)
	} else if _, err := time.ParseInLocation(DateLayout, in.GmtCreate, beijing); err != nil {
		return Binding{}, fmt.Errorf("GmtCreate %q: want layout %q", in.GmtCreate, DateLayout)
	}
	if in.GroupId != "" {
		if _, err := strconv.ParseInt(in.GroupId, 10, 64); err != nil {
			return Binding{}, fmt.Errorf("GroupId %q: want an integer", in.GroupId)
		}
	}
	if in.PoolKey == "" {
		in.PoolKey = DefaultPoolKey
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.pools[in.PoolKey]
	if p == nil {
		p = &pool{key: in.PoolKey, numbers: map[string]struct{}{}}
		st.pools[in.PoolKey] = p
	}
	if in.PhoneNoX == "" {
		in.PhoneNoX = p.pick(st.rng)
		if in.PhoneNoX == "" {
			return Binding{}, fmt.Errorf("PhoneNoX: pool %s has no numbers to pick from", in.PoolKey)
		}
	}
	p.add(in.PhoneNoX)
	if in.SubsId == "" {
		in.SubsId = st.newSubsID()
	}
	if old := st.bindings[in.SubsId]; old != nil {
		st.unindex(old)
	}
	b := &binding{Binding: in, expire: exp.Unix()}
	st.bindings[in.SubsId] = b
	st.index(b)
	return b.view(now.Unix()), nil
}

func (st *state) get(subsID string, now time.Time) (Binding, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b := st.bindings[subsID]
	if b == nil {
		return Binding{}, false
	}
	return b.view(now.Unix()), true
}

func (st *state) remove(subsID string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	b := st.bindings[subsID]
	if b == nil {
		return false
	}
	st.unindex(b)
	delete(st.bindings, subsID)
	return true
}

func (st *state) all(now time.Time) []Binding {
	st.mu.Lock()
	out := make([]Binding, 0, len(st.bindings))
	for _, b := range st.bindings {
		out = append(out, b.view(now.Unix()))
	}
	st.mu.Unlock()
	slices.SortFunc(out, func(a, b Binding) int {
		// Equal-length decimal ids sort numerically as strings.
		if len(a.SubsId) != len(b.SubsId) {
			return len(a.SubsId) - len(b.SubsId)
		}
		return strings.Compare(a.SubsId, b.SubsId)
	})
	return out
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validPhone reports whether s is a mobile number (1 + 10 digits) or a
// landline with area code and no hyphen (0 + 9 to 11 digits).
func validPhone(s string) bool {
	if !allDigits(s) {
		return false
	}
	switch s[0] {
	case '1':
		return len(s) == 11
	case '0':
		return len(s) >= 10 && len(s) <= 12
	}
	return false
}
