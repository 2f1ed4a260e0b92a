package region_test

import (
	"fmt"

	"github.com/pophub/pophub/schemas/region"
)

// A hukou address code's chain and class in the built-in table.
func ExampleChain() {
	for _, d := range region.Chain("230102001001") {
		fmt.Println(d.Code, d.Level, d.Name)
	}
	d, _ := region.Lookup("230102001001")
	fmt.Println(d.UrbanRural, "derived:", d.Derived)
	// Output:
	// 23 province 黑龙江省
	// 2301 city 哈尔滨市
	// 230102 county 道里区
	// 230102001 township 兆麟街道
	// 230102001001 village 省报社社区居委会
	// urban derived: true
}
