package fluxsim

// Demo returns the built-in demo set: two fast-flux names (one double flux) under
// suspicious TLDs with short labels, plus benign static, round-robin, CDN, CNAME
// and private names that a detector must leave alone.
func Demo() []Name {
	return []Name{
		{Name: "login.fluxy.top.", Kind: Flux, Pool: 60, PerAnswer: 4, TTL: 5, IPv6: true},
		{Name: "cdn.kwik.tk.", Kind: Flux, Pool: 40, PerAnswer: 3, TTL: 10, NSPool: 8},
		{Name: "www.stable.example.", Kind: Static, IPs: []string{"93.184.215.14"}, TTL: 300},
		{Name: "www.rr-shop.example.", Kind: RoundRobin, TTL: 300,
			IPs: []string{"151.101.1.10", "151.101.65.10", "151.101.129.10", "151.101.193.10"}},
		{Name: "img.shop.cloudfront.net.", Kind: Flux, Pool: 30, PerAnswer: 8, TTL: 60, Operators: []string{"amazon"}},
		{Name: "www.alias.example.", Kind: CNAME, Target: "img.shop.cloudfront.net.", TTL: 300},
		{Name: "intranet.corp.", Kind: RoundRobin, TTL: 300,
			IPs: []string{"10.0.0.10", "10.0.0.11", "10.0.1.10", "10.0.1.11", "10.1.0.10", "10.1.0.11"}},
	}
}
