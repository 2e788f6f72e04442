// Package dyplsim is a local Dyplsapi (Alibaba Cloud Phone Number
// Protection, API version 2017-05-25) server that the official SDKs talk
// to unchanged: the V1 Go SDK
// (github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi) and the V2
// "Tea" runtime (github.com/alibabacloud-go/darabonba-openapi/v2), with
// either of its signatures. It serves BindAxb, UpdateSubscription,
// QuerySubscriptionDetail and UnbindSubscription with real binding state,
// checks requests the way the POP gateway does, enforces a per-AccessKey
// quota, and injects faults.
// The cmd/dyplsim binary serves the same handler.
//
// # Use in tests
//
//	sim, srv, addr, err := dyplsim.Start(dyplsim.Config{Seed: 10, RandSeed: 1}, "127.0.0.1:0")
//	if err != nil { ... }
//	defer srv.Close()
//
//	client, _ := dyplsapi.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(),
//		credentials.NewAccessKeyCredential(dyplsim.DefaultAccessKeyID, dyplsim.DefaultAccessKeySecret))
//	client.Domain = addr // sdk.NewConfig() uses plain HTTP
//
//	req := dyplsapi.CreateUpdateSubscriptionRequest()
//	req.PoolKey, req.SubsId, req.PhoneNoX = dyplsim.DefaultPoolKey, "1000000000000001", "17000000000"
//	req.OperateType, req.PhoneNoB = "updateNoB", "13900009999"
//	resp, err := client.UpdateSubscription(req) // resp.Code == "OK"
//
// The SDK client is not safe for concurrent use: give every goroutine its
// own. Creating clients is not safe either the first time:
// dyplsapi.NewClientWithOptions lazily fills a package-global map, so
// construct them one at a time (a mutex) or after one client exists.
//
// # Wire protocol and gateway checks
//
// Calls are POST / (GET also works). Two signatures are accepted:
//
//   - RPC HMAC-SHA1 (the V1 SDK, and the V2 SDKs with SignatureAlgorithm
//     "v2"): Action, Version, AccessKeyId, Timestamp, SignatureNonce,
//     SignatureMethod HMAC-SHA1, SignatureVersion 1.0 and Signature in the
//     query string (form-encoded body parameters count too).
//   - ACS3-HMAC-SHA256 (the V2 "Tea" SDKs' default): the action and version
//     in the x-acs-action and x-acs-version headers, x-acs-date,
//     x-acs-signature-nonce, x-acs-content-sha256 (hex SHA-256 of the body),
//     and "Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,
//     SignedHeaders=<h1;h2;...>,Signature=<hex>" over the canonical request
//     (see ACS3CanonicalRequest). Host and every x-acs-* header sent must be
//     signed. Business parameters are in the query string or a form body.
//
// A request with an Authorization header, or with x-acs-action and no
// Signature parameter, is taken as ACS3. The checks run in the order of a
// POP gateway, each answering an error body {"RequestId","HostId","Code",
// "Message","Recommend"} (Recommend names the code and the RequestId):
//
//  1. unknown Action: 404 InvalidApi.NotFound; a known Action without
//     Version: 400 MissingVersion (ACS3: MissingParameter); any Version but
//     2017-05-25: 400 InvalidVersion "Specified parameter Version is not valid."
//  2. ACS3 only: no Authorization: 400 MissingParameter; an Authorization
//     that is not ACS3-HMAC-SHA256 with Credential, SignedHeaders and
//     Signature: 400 IncompleteSignature
//  3. unknown AccessKeyId: 404 InvalidAccessKeyId.NotFound
//  4. Timestamp (x-acs-date) not 2006-01-02T15:04:05Z: 400
//     InvalidTimeStamp.Format; more than 15 minutes from the clock: 400
//     InvalidTimeStamp.Expired
//  5. SignatureNonce (x-acs-signature-nonce) seen in the last 15 minutes, by
//     either signature: 400 SignatureNonceUsed
//  6. RPC: SignatureMethod other than HMAC-SHA1: 400 InvalidSignatureMethod,
//     SignatureVersion other than 1.0: 400 InvalidSignatureVersion (absent:
//     Missing<Name>); ACS3: a required header absent: 400 MissingParameter
//     naming it, host or an x-acs-* header not signed: 400
//     IncompleteSignature
//  7. wrong signature: 400 SignatureDoesNotMatch, with the message
//     "Specified signature is not matched with our calculation. server
//     string to sign is:<sts>" (the V1 SDK turns it into Recommend)
//  8. quota exceeded: 400 Throttling.User with header x-ratelimit-user-api
//     "Limit:<qps>,Remain:0,TimeLeft:<ms>" (status and code configurable), or
//     HTTP 200 {"Code":"isv.FLOW_LIMIT"} when Config.ThrottleCode says so
//  9. a required parameter missing: 400 Missing<Param>,
//     "<Param> is mandatory for this action."
//
// Format=XML (any case) is answered in XML with Content-Type
// "text/xml;charset=utf-8": <ActionResponse> for business answers, <Error>
// for gateway errors. QuerySubscriptionDetail leaves GroupId out when the
// binding has no group, and shows Extension only when one is set.
//
// Then fault rules are consulted, then the business logic answers HTTP 200
// with {"RequestId","Code","Message",...}: "OK" or a business code such as
// isv.SUBS_NOT_EXIST, isv.BIND_CONFLICT or isv.EXPIRE_DATE_ILLEGAL. The
// exact validation order of UpdateSubscription is: PoolKey/ProductType,
// PoolKey known, X owned, binding matches, OperateType known, binding not
// expired (updateNoA, updateNoB, updateExpire), OperateType parameter,
// conflicts.
//
// # Number pools and sample bindings
//
// Pool DefaultPoolKey ("FC100000000000001") always exists and owns every X
// number "170" followed by 8 digits; any other X is isv.NO_NOT_EXIST unless
// PutBinding registered it. BindAxb without PhoneNoX picks a random X from
// the pool.
//
// Config.Seed = N creates N bindings; binding i (1..N) is SeedBinding(i):
//
//	SubsId   1000000000000000+i   (16 digits: 1000000000000001, 1000000000000002, ...)
//	PoolKey  FC100000000000001
//	PhoneNoX 170 + (i-1) as 8 digits   (17000000000, 17000000001, ...)
//	PhoneNoA 138 + (i-1) as 8 digits   (13800000000, ...)
//	PhoneNoB 139 + (i-1) as 8 digits   (13900000000, ...)
//	ExpireDate one year after creation, CallDisplayType 1, nothing else set
//
// The scheme does not depend on RandSeed, so tests and demos can address
// bindings by index. RandSeed drives what is random: RequestIds, SubsIds
// and X numbers made by BindAxb (SubsIds start with 2), jitter and fault
// rates. Runs with the same RandSeed and the same sequence of calls repeat
// them.
//
// # Faults
//
// A FaultRule targets calls by Action, SubsId and OperateType and answers
// with a business code, a gateway error, a raw HTTP status and body (for
// example a non-JSON 502), an empty 200, a hang, a dropped connection
// (before or after applying the update) or added latency. Count, After and
// Rate script sequences: "fail twice then succeed" is Count 2; "succeed
// once, then fail" is After 1. Rules are evaluated in order; the first that
// matches and fires decides the call.
//
// In JSON (PUT /_sim/faults, the dyplsim --faults file) a rule uses the
// same field names, with Delay as a Go duration string:
//
//	[{"Action":"UpdateSubscription","SubsId":"1000000000000001","Code":"isp.SYSTEM_ERROR","Count":2},
//	 {"OperateType":"updateNoB","Kind":"drop_after","Count":1},
//	 {"Kind":"hang","Delay":"30s","After":10,"Count":1},
//	 {"Kind":"http","Status":502,"Rate":0.01}]
//
// # Control plane
//
// The same port serves JSON under /_sim/; errors are {"error":"..."} with
// status 400 (404 for an unknown binding or endpoint, 405 for a wrong
// method):
//
//	GET    /_sim/health             {"Status":"ok"}
//	GET    /_sim/bindings           [Binding, ...] ordered by SubsId
//	GET    /_sim/bindings?SubsId=   one Binding
//	POST   /_sim/bindings           a Binding or an array; answers what was stored
//	DELETE /_sim/bindings?SubsId=   remove one binding
//	GET    /_sim/stats              {"Total":n,"Applied":n,"Calls":{"UpdateSubscription":{"OK":n,...},...},
//	                                 "Overlaps":{"<SubsId>":n,...}} (UpdateSubscription calls for one
//	                                 binding in flight at once; absent when none overlapped)
//	GET    /_sim/faults             [rule + "Seen","Fired","Spent", ...]
//	PUT    /_sim/faults             an array of rules; replaces all
//	POST   /_sim/faults             a rule or an array; appends
//	DELETE /_sim/faults             remove all rules
//	POST   /_sim/reset              back to the state after New
//	GET    /_sim/quota              {"QPS":10000,"Burst":1000,"QueryQPS":5000,"QueryBurst":500}
//	PUT    /_sim/quota              any of those fields; a new QPS without Burst gets the default burst
//	GET    /_sim/credentials        the credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI): {"Code":"Success",
//	                                 "AccessKeyId","AccessKeySecret","SecurityToken","Expiration","LastUpdated"}
//	GET    /_sim/sts                {"Lifetime":"1h0m0s","ExpirationSkew":"0s","Issued":n,"Served":n,"Refused":n,"Expired":n}
//	PUT    /_sim/sts                any of Lifetime, ExpirationSkew, Fail (a message: the URI answers
//	                                 FailStatus, default 500, until Fail is "") and FailStatus
//
// # STS credentials
//
// Besides its permanent AccessKeys the gateway accepts the STS credentials
// that the credentials URI hands out: an AccessKeyId "STS.…" with its
// SecurityToken, accepted until it expires (Lifetime after it was made).
// The URI hands out the current set while more than a third of its life is
// left, then a new one. A call signed with expired credentials is answered
// 400 InvalidSecurityToken.Expired, a wrong token
// InvalidSecurityToken.MismatchWithAccessKey, none
// InvalidSecurityToken.Malformed; an hour after expiry the AccessKeyId is
// forgotten (404 InvalidAccessKeyId.NotFound). ExpirationSkew makes the URI
// report a later Expiration than the gateway enforces, as when the client's
// clock is behind, so that a client that caches credentials until shortly
// before their expiry meets the expired-token answer. All STS credentials
// share one quota.
package dyplsim
