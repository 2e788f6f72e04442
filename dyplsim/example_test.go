package dyplsim_test

import (
	"fmt"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"

	"github.com/dyplsq/dyplsq/dyplsim"
)

func ExampleStart() {
	sim, srv, addr, err := dyplsim.Start(dyplsim.Config{Seed: 1, RandSeed: 1}, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	client, err := dyplsapi.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(),
		credentials.NewAccessKeyCredential(dyplsim.DefaultAccessKeyID, dyplsim.DefaultAccessKeySecret))
	if err != nil {
		panic(err)
	}
	client.Domain = addr

	b := dyplsim.SeedBinding(1)
	req := dyplsapi.CreateUpdateSubscriptionRequest()
	req.PoolKey, req.SubsId, req.PhoneNoX = b.PoolKey, b.SubsId, b.PhoneNoX
	req.OperateType, req.PhoneNoB = "updateNoB", "13900009999"
	resp, err := client.UpdateSubscription(req)
	if err != nil {
		panic(err)
	}
	now, _ := sim.Binding(b.SubsId)
	fmt.Println(resp.Code, now.PhoneNoB, sim.Stats().Applied)
	// Output: OK 13900009999 1
}
