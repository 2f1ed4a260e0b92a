package merge

import (
	"maps"
	"reflect"
	"slices"

	"github.com/pophub/pophub/hub"
)

// sectionEqual reports whether two derivations of the same section are
// equal, exactly as reflect.DeepEqual would (a nil slice or map differs
// from an empty one), without reflection: the merge compares every
// section an event may change before and after it, and reflection was a
// sixth of that. TestSectionEqualIsDeepEqual holds it to DeepEqual.
func sectionEqual(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case *hub.Identity:
		y, ok := b.(*hub.Identity)
		return ok && ptrEqual(x, y, func(x, y *hub.Identity) bool { return *x == *y })
	case *hub.Hukou:
		y, ok := b.(*hub.Hukou)
		return ok && ptrEqual(x, y, func(x, y *hub.Hukou) bool { return *x == *y })
	case *hub.Marital:
		y, ok := b.(*hub.Marital)
		return ok && ptrEqual(x, y, func(x, y *hub.Marital) bool { return *x == *y })
	case []hub.ResidencePermit:
		y, ok := b.([]hub.ResidencePermit)
		return ok && sliceEqual(x, y)
	case []hub.Contract:
		y, ok := b.([]hub.Contract)
		return ok && sliceEqual(x, y)
	case []hub.Anomaly:
		y, ok := b.([]hub.Anomaly)
		return ok && sliceEqual(x, y)
	case *hub.Education:
		y, ok := b.(*hub.Education)
		return ok && ptrEqual(x, y, func(x, y *hub.Education) bool {
			return x.HighestLevel == y.HighestLevel && x.Institution == y.Institution && x.GraduatedOn == y.GraduatedOn &&
				sliceEqual(x.Enrolments, y.Enrolments)
		})
	case *hub.SocialInsurance:
		y, ok := b.(*hub.SocialInsurance)
		return ok && ptrEqual(x, y, func(x, y *hub.SocialInsurance) bool {
			return x.Scheme == y.Scheme && x.Region == y.Region && (x.Insurances == nil) == (y.Insurances == nil) &&
				maps.Equal(x.Insurances, y.Insurances)
		})
	case *hub.Housing:
		y, ok := b.(*hub.Housing)
		return ok && ptrEqual(x, y, func(x, y *hub.Housing) bool { return sliceEqual(x.Owned, y.Owned) && sliceEqual(x.Rentals, y.Rentals) })
	case *hub.Tax:
		y, ok := b.(*hub.Tax)
		return ok && ptrEqual(x, y, func(x, y *hub.Tax) bool { return sliceEqual(x.Businesses, y.Businesses) })
	}
	return reflect.DeepEqual(a, b)
}

func ptrEqual[T any](x, y *T, eq func(x, y *T) bool) bool {
	if x == nil || y == nil {
		return x == y
	}
	return x == y || eq(x, y)
}

func sliceEqual[T comparable](x, y []T) bool {
	return (x == nil) == (y == nil) && slices.Equal(x, y)
}
